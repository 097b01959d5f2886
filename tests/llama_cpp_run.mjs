// llama.cpp (node-llama-cpp's prebuilt CPU library) on a GGUF file: an engine independent of ours.
// Usage: node llama_cpp_run.mjs NODE_LLAMA_CPP_DIR MODEL.gguf greedy PROMPT_IDS N
//        node llama_cpp_run.mjs NODE_LLAMA_CPP_DIR MODEL.gguf perplexity IDS SEQ_LEN
//   IDS: comma-separated token ids, BOS included (the test encodes them with Debian's spm_encode).
//   greedy: N tokens, each the argmax of llama.cpp's raw logits, with the gap between its two largest logits; then
//           llama.cpp's own sampler at temperature 0 on a fresh sequence, timed (tokens/s).
//   perplexity: `eval`'s windows (seq_len + 1 ids overlapping by one, a last partial window dropped), each on an
//           emptied sequence; the mean next-token loss from llama.cpp's logits.
// Prints one JSON line.
import path from "node:path";
import {pathToFileURL} from "node:url";

const [dir, modelPath, mode, idsText, countText] = process.argv.slice(2);
const {getLlama} = await import(pathToFileURL(path.join(dir, "node_modules/node-llama-cpp/dist/index.js")).href);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath});
const ids = idsText.split(",").map(Number);
const count = Number(countText);

// The argmax of a logits Map and the gap to the runner-up.
function top2(logits) {
  let best = -1, first = -Infinity, second = -Infinity;
  for (const [token, value] of logits) {
    if (value > first) [second, first, best] = [first, value, token];
    else if (value > second) second = value;
  }
  return {token: best, gap: first - second};
}

async function greedy() {
  const context = await model.createContext({contextSize: ids.length + count + 8, sequences: 2, threads: 2});
  const sequence = context.getSequence();
  const tokens = [], gaps = [];
  let input = ids.map((id, i) => (i === ids.length - 1 ? [id, {generateNext: {logits: true}}] : id));
  for (let i = 0; i < count; ++i) {
    const out = await sequence.controlledEvaluate(input);
    const {token, gap} = top2(out[input.length - 1].next.logits);
    tokens.push(token);
    gaps.push(gap);
    input = [[token, {generateNext: {logits: true}}]];
  }
  // llama.cpp's own decoding loop, timed.
  const timed = context.getSequence();
  const sampled = [];
  const start = process.hrtime.bigint();
  for await (const token of timed.evaluate(ids, {temperature: 0})) {
    sampled.push(token);
    if (sampled.length === count) break;
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return {tokens, gaps, sampled, tokens_per_s: count / seconds};
}

async function perplexity() {
  const context = await model.createContext({contextSize: count + 8, threads: 2});
  const sequence = context.getSequence();
  let nll = 0, targets = 0;
  for (let start = 0; start + count + 1 <= ids.length; start += count) {
    const window = ids.slice(start, start + count + 1);
    await sequence.clearHistory();
    const input = window.slice(0, count).map((id, i) => [id, {generateNext: {
      logits: {filter: {tokens: [window[i + 1]], includeTop: 1}}, totalLogitWeight: true}}]);
    const out = await sequence.controlledEvaluate(input);
    for (let i = 0; i < count; ++i) {
      const {logits, totalLogitWeight} = out[i].next;
      const max = Math.max(...logits.values());
      nll -= logits.get(window[i + 1]) - max - Math.log(totalLogitWeight);  // -log softmax(target)
      ++targets;
    }
  }
  return {loss: nll / targets, perplexity: Math.exp(nll / targets), tokens: targets};
}

console.log(JSON.stringify(mode === "greedy" ? await greedy() : await perplexity()));
await model.dispose();
