// UDP heartbeats: every rank's row to every other rank each interval; goodbyes and verdicts.
#include "llama2/dist/heartbeat.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <mpi.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>
#include <type_traits>

#include <fmt/format.h>

#include "llama2/util/errors.h"
#include "llama2/util/host_name.h"

namespace llama2 {
namespace {

constexpr uint32_t kMagic = 0x4C324842;  // "L2HB"
constexpr double kRttSmoothing = 0.2;     // each round-trip sample's weight in a link's smoothed value

int64_t monotonic_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
enum Kind : uint32_t { kBeat = 1, kGoodbye = 2, kVerdict = 3 };

// One datagram (under one Ethernet frame): the sender's row as this build lays it out (every rank of a job runs the
// same binary), or its verdict line.
struct Datagram {
  uint32_t magic = kMagic, kind = kBeat;
  uint64_t job = 0;
  int64_t rank = 0, status = 0;
  // A beat's round-trip echo: its send time (the sender's clock), the receiver's last beat's send time as it arrived
  // (0: none since the last echo) and how long the sender held it before this reply.
  int64_t sent_ns = 0, echo_ns = 0, echo_hold_ns = 0;
  RankStatus row;
  char text[1024] = {};
};
static_assert(std::is_trivially_copyable_v<RankStatus>, "a row travels as its bytes");
static_assert(sizeof(Datagram) < 1400, "a heartbeat fits one datagram on a 1500-byte MTU");

struct Endpoint {  // what each rank tells the others at start-up
  char host[64] = {};
  uint32_t ipv4 = 0;
  uint16_t port = 0;
};

bool is_loopback(uint32_t ipv4) { return (ntohl(ipv4) >> 24) == 127; }

// The IPv4 addresses of this host's interfaces that are up, loopback excluded, in interface order.
std::vector<uint32_t> interface_addresses() {
  std::vector<uint32_t> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* a = list; a; a = a->ifa_next)
    if (a->ifa_addr && a->ifa_addr->sa_family == AF_INET) {
      const uint32_t ip = reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr.s_addr;
      if (!is_loopback(ip)) out.push_back(ip);
    }
  freeifaddrs(list);
  return out;
}

// The address other nodes reach this one at: its host name as resolved here when that is one of its own
// interfaces (the cluster's naming, not docker0 or a second NIC), else its first interface, else loopback.
uint32_t advertised_ipv4() {
  const std::vector<uint32_t> own = interface_addresses();
  addrinfo hints{};
  hints.ai_family = AF_INET;
  addrinfo* resolved = nullptr;
  if (getaddrinfo(host_name().c_str(), nullptr, &hints, &resolved) == 0) {
    for (addrinfo* a = resolved; a; a = a->ai_next) {
      const uint32_t ip = reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr.s_addr;
      if (std::find(own.begin(), own.end(), ip) != own.end()) {
        freeaddrinfo(resolved);
        return ip;
      }
    }
    freeaddrinfo(resolved);
  }
  return own.empty() ? htonl(INADDR_LOOPBACK) : own.front();
}

// Whether a received row's enums are in range (a corrupt datagram is dropped, not trusted).
bool valid_row(const RankStatus& r, int64_t rank) {
  const auto in = [](auto value, auto count) { return static_cast<size_t>(value) < static_cast<size_t>(count); };
  return r.world_rank == rank && in(r.activity, Activity::Count) && in(r.wait_group, CommGroup::Count) &&
         in(r.wait_op, CollectiveOp::Count);
}

}  // namespace

Heartbeat::Heartbeat(void* world_comm) {
  MPI_Comm comm = static_cast<MPI_Comm>(world_comm);
  int world = 1;
  MPI_Comm_rank(comm, &world_rank_);
  MPI_Comm_size(comm, &world);
  fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw RuntimeFailure(fmt::format("heartbeat: cannot open a UDP socket: {}", std::strerror(errno)));
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t length = sizeof any;
  if (bind(fd_, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0 ||
      getsockname(fd_, reinterpret_cast<sockaddr*>(&any), &length) != 0)
    throw RuntimeFailure(fmt::format("heartbeat: cannot bind a UDP port: {}", std::strerror(errno)));

  Endpoint mine;
  std::snprintf(mine.host, sizeof mine.host, "%s", host_name().c_str());
  mine.ipv4 = advertised_ipv4();
  mine.port = any.sin_port;
  std::vector<Endpoint> all(world);
  MPI_Allgather(&mine, sizeof mine, MPI_BYTE, all.data(), sizeof mine, MPI_BYTE, comm);
  job_ = std::random_device{}() * uint64_t{0x9E3779B97F4A7C15} + static_cast<uint64_t>(getpid());
  MPI_Bcast(&job_, 1, MPI_UINT64_T, 0, comm);
  for (const Endpoint& e : all) {
    hosts_.emplace_back(e.host);
    // A rank on this host is reached over loopback: it stays reachable when only the node's link is cut.
    const bool remote = hosts_.back() != mine.host;
    peers_.push_back({remote ? e.ipv4 : htonl(INADDR_LOOPBACK), e.port, remote});
  }
  interval_s_ = std::max(1.0, world / 256.0);
}

Heartbeat::~Heartbeat() {
  if (thread_.joinable()) {
    stop_ = true;
    thread_.join();
    Datagram goodbye;
    goodbye.kind = kGoodbye;
    goodbye.job = job_;
    goodbye.rank = world_rank_;
    for (int i = 0; i < 3; ++i) send_to_all(&goodbye, sizeof goodbye);  // UDP: one may be lost
  }
  if (fd_ >= 0) close(fd_);
}

void Heartbeat::start(StatusBoard& board) {
  board_ = &board;
  thread_ = std::thread([this] { run(); });
}

void Heartbeat::send_to(size_t rank, const void* datagram, size_t size) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = peers_[rank].ipv4;
  to.sin_port = peers_[rank].port;
  // Failures (a cut link: unreachable) are what the receivers' silence reports; nothing to do here.
  sendto(fd_, datagram, size, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&to), sizeof to);
}

void Heartbeat::send_to_all(const void* datagram, size_t size) {
  for (size_t r = 0; r < peers_.size(); ++r)
    if (static_cast<int>(r) != world_rank_) send_to(r, datagram, size);
}

// This rank's row to every other rank, each beat echoing the last one heard from its receiver.
void Heartbeat::send_beats() {
  Datagram beat;
  beat.job = job_;
  beat.rank = world_rank_;
  beat.row = board_->self();
  for (size_t r = 0; r < peers_.size(); ++r) {
    if (static_cast<int>(r) == world_rank_) continue;
    Peer& peer = peers_[r];
    beat.sent_ns = monotonic_ns();
    beat.echo_ns = peer.their_sent_ns;
    beat.echo_hold_ns = peer.their_sent_ns ? beat.sent_ns - peer.their_arrival_ns : 0;
    peer.their_sent_ns = 0;  // each beat echoed once
    send_to(r, &beat, sizeof beat);
  }
}

// One round trip to `peer`: now less our beat's send time, less the time the peer held it before echoing.
void Heartbeat::sample_rtt(Peer& peer, int64_t echo_ns, int64_t hold_ns) {
  const double sample = static_cast<double>(monotonic_ns() - echo_ns - hold_ns) * 1e-9;
  if (sample < 0 || sample > 60) return;  // not an echo of ours
  peer.rtt_s = peer.rtt_s == 0 ? sample : (1 - kRttSmoothing) * peer.rtt_s + kRttSmoothing * sample;
  double nearest = 0;
  for (const Peer& p : peers_)
    if (p.remote && p.rtt_s > 0 && (nearest == 0 || p.rtt_s < nearest)) nearest = p.rtt_s;
  board_->set_link_rtt(nearest);
}

void Heartbeat::send_verdict(int status, const std::string& line) {
  Datagram d;
  d.kind = kVerdict;
  d.job = job_;
  d.rank = world_rank_;
  d.status = status;
  std::snprintf(d.text, sizeof d.text, "%s", line.c_str());
  for (int i = 0; i < 3; ++i) {
    send_to_all(&d, sizeof d);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Verdict Heartbeat::verdict() const {
  std::lock_guard<std::mutex> lock(verdict_mutex_);
  return verdict_;
}

void Heartbeat::receive(const void* data, size_t size) {
  if (size != sizeof(Datagram)) return;
  Datagram d;
  std::memcpy(&d, data, sizeof d);
  if (d.magic != kMagic || d.job != job_ || d.rank < 0 || d.rank >= static_cast<int64_t>(peers_.size())) return;
  if (d.kind == kGoodbye) {
    board_->left(static_cast<int>(d.rank));
  } else if (d.kind == kVerdict) {
    std::lock_guard<std::mutex> lock(verdict_mutex_);
    d.text[sizeof d.text - 1] = '\0';
    if (verdict_.from < 0) verdict_ = {static_cast<int>(d.rank), static_cast<int>(d.status), d.text};
  } else if (d.kind == kBeat && valid_row(d.row, d.rank)) {
    board_->heard(d.row);
    Peer& peer = peers_[d.rank];
    peer.their_sent_ns = d.sent_ns;
    peer.their_arrival_ns = monotonic_ns();
    if (d.echo_ns != 0 && peer.remote) sample_rtt(peer, d.echo_ns, d.echo_hold_ns);
  }
}

void Heartbeat::run() {
  using Clock = std::chrono::steady_clock;
  auto next_send = Clock::now();
  std::vector<char> buffer(sizeof(Datagram) + 1);
  while (!stop_) {
    const auto now = Clock::now();
    if (now >= next_send) {
      send_beats();
      next_send = now + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval_s_));
    }
    // Wake at least every 100 ms so that stop_ is seen promptly.
    const auto wait = std::min<Clock::duration>(next_send - Clock::now(), std::chrono::milliseconds(100));
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(std::max<int64_t>(
                        0, std::chrono::duration_cast<std::chrono::milliseconds>(wait).count()))) <= 0)
      continue;
    for (ssize_t n; (n = recv(fd_, buffer.data(), buffer.size(), MSG_DONTWAIT)) > 0;)
      receive(buffer.data(), static_cast<size_t>(n));
  }
}

}  // namespace llama2
