// Owns the job-wide liveness channel: UDP datagrams between every pair of ranks, outside MPI, each carrying its
// sender's status row every interval (and an echo that times each link's round trip), a goodbye at a normal end and
// a verdict when a rank ends the job.
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "llama2/dist/status_board.h"

namespace llama2 {

// Why another rank ended the job, as it said it.
struct Verdict {
  int from = -1;   // its world rank; -1: none heard
  int status = 0;  // the exit status it ends with
  std::string line;
};

class Heartbeat {
 public:
  // Collective over the world (an MPI_Comm as void*), while MPI is healthy: binds a UDP port on this node and
  // learns every rank's host name, address and port. No thread runs yet.
  explicit Heartbeat(void* world_comm);
  ~Heartbeat();  // says goodbye (so a rank that ends normally is not taken for lost) and stops the thread
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

  const std::vector<std::string>& hosts() const { return hosts_; }  // [world rank]
  // Sends `board`'s own row to every other rank every interval_s() and files what arrives into `board`, with this
  // rank's round trip to its nearest other node.
  void start(StatusBoard& board);
  // Between two beats of one rank: 1 s, longer above 256 ranks (each rank sends world − 1 datagrams a beat).
  double interval_s() const { return interval_s_; }

  // This rank ends the job: tells every other rank, so they dump their flight recorders and end too.
  void send_verdict(int status, const std::string& line);
  Verdict verdict() const;  // the first one heard from another rank

 private:
  struct Peer {
    uint32_t ipv4 = 0;  // network order
    uint16_t port = 0;  // network order
    bool remote = false;  // on another host
    // The round trip, by echo: its last beat's send time (its clock) and when that arrived (ours), echoed back with
    // our next beat to it; what comes back gives a sample (heartbeat thread only).
    int64_t their_sent_ns = 0, their_arrival_ns = 0;
    double rtt_s = 0;  // smoothed; 0: none yet
  };
  void run();
  void send_beats();
  void send_to(size_t rank, const void* datagram, size_t size);
  void send_to_all(const void* datagram, size_t size);
  void receive(const void* datagram, size_t size);
  void sample_rtt(Peer& peer, int64_t echo_ns, int64_t hold_ns);

  int fd_ = -1;
  int world_rank_ = 0;
  uint64_t job_ = 0;  // the job's nonce: datagrams of another job are dropped
  std::vector<std::string> hosts_;
  std::vector<Peer> peers_;
  double interval_s_ = 1;
  StatusBoard* board_ = nullptr;
  std::atomic<bool> stop_{false};
  mutable std::mutex verdict_mutex_;
  Verdict verdict_;
  std::thread thread_;
};

}  // namespace llama2
