#include "ferry/crash_guard.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace ferry {

// The mapped file. Versioned; a file of another version or size is reset (it holds only hints).
struct CrashGuard::Slot {
  std::atomic<uint64_t> hash;
  std::atomic<uint32_t> state;  // 0 idle, 1 in hand, 2 in hand when a fatal signal arrived
  uint32_t pad;
};
struct CrashGuard::Strike {
  uint64_t hash;
  uint32_t strikes;  // 0: free entry
  uint32_t pad;
};
struct CrashGuard::File {
  char magic[8];  // "FRYGUARD"
  uint32_t version;
  uint32_t slots;
  Slot slot[kSlots];
  Strike strike[16];
};
static_assert(sizeof(CrashGuard::Slot) == 16, "guard slot layout");
static_assert(sizeof(CrashGuard::File) == 16 + 16 * CrashGuard::kSlots + 16 * 16, "guard file layout");

namespace {

constexpr uint32_t kVersion = 1;
constexpr uint32_t kPoison = 2;  // strikes at which a message is set aside

thread_local std::atomic<uint32_t>* t_state = nullptr;  // the calling thread's slot state
thread_local bool t_altstack = false;

void OnFatalSignal(int sig) {
  if (t_state != nullptr && t_state->load(std::memory_order_relaxed) == 1) t_state->store(2, std::memory_order_relaxed);
  // Die as the signal would have killed us (core dump, exit status), without running anything else.
  signal(sig, SIG_DFL);
  raise(sig);
}

}  // namespace

Result<std::unique_ptr<CrashGuard>> CrashGuard::Open(const std::string& path) {
  std::unique_ptr<CrashGuard> g(new CrashGuard());
  g->fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (g->fd_ < 0) return IoError(path + ": " + std::strerror(errno));
  g->map_size_ = sizeof(File);
  struct stat st {};
  if (::fstat(g->fd_, &st) != 0) return IoError(path + ": " + std::strerror(errno));
  bool fresh = static_cast<size_t>(st.st_size) != g->map_size_;
  if (fresh && ::ftruncate(g->fd_, static_cast<off_t>(g->map_size_)) != 0)
    return IoError(path + ": " + std::strerror(errno));
  void* p = ::mmap(nullptr, g->map_size_, PROT_READ | PROT_WRITE, MAP_SHARED, g->fd_, 0);
  if (p == MAP_FAILED) return IoError(path + ": mmap: " + std::strerror(errno));
  g->file_ = static_cast<File*>(p);
  File& f = *g->file_;
  if (fresh || std::memcmp(f.magic, "FRYGUARD", 8) != 0 || f.version != kVersion || f.slots != kSlots) {
    std::memset(static_cast<void*>(&f), 0, sizeof f);
    std::memcpy(f.magic, "FRYGUARD", 8);
    f.version = kVersion;
    f.slots = kSlots;
  }
  // Take over what an unclean exit left in hand: strikes for the messages, poison for a fatal signal.
  for (Slot& s : f.slot) {
    uint32_t state = s.state.load();
    if (state == 0) continue;
    uint64_t h = s.hash.load();
    Strike* entry = nullptr;
    for (Strike& k : f.strike)
      if (k.strikes != 0 && k.hash == h) entry = &k;
    if (entry == nullptr) {
      entry = &f.strike[0];  // the entry with the fewest strikes makes room
      for (Strike& k : f.strike)
        if (k.strikes < entry->strikes) entry = &k;
      entry->hash = h;
      entry->strikes = 0;
    }
    entry->strikes = state == 2 ? kPoison : entry->strikes + 1;
    s.state.store(0);
  }
  g->any_strikes_ = g->suspects() > 0;
  struct sigaction sa {};
  sa.sa_handler = OnFatalSignal;
  sa.sa_flags = SA_ONSTACK | SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT}) sigaction(sig, &sa, nullptr);
  return g;
}

CrashGuard::~CrashGuard() {
  if (file_ != nullptr) {
    for (Slot& s : file_->slot) s.state.store(0);
    ::msync(file_, map_size_, MS_ASYNC);
    ::munmap(file_, map_size_);
  }
  if (fd_ >= 0) ::close(fd_);
}

uint64_t CrashGuard::Hash(std::string_view topic, std::string_view payload) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  for (unsigned char c : topic) h = (h ^ c) * 1099511628211ull;
  h = (h ^ 0xff) * 1099511628211ull;
  for (unsigned char c : payload) h = (h ^ c) * 1099511628211ull;
  return h | 1;  // never 0
}

void CrashGuard::Enter(size_t slot, uint64_t hash) {
  Slot& s = file_->slot[slot % kSlots];
  s.hash.store(hash, std::memory_order_relaxed);
  s.state.store(1, std::memory_order_release);
}

void CrashGuard::Leave(size_t slot) { file_->slot[slot % kSlots].state.store(0, std::memory_order_release); }

void CrashGuard::BindThread(size_t slot) {
  t_state = &file_->slot[slot % kSlots].state;
  if (!t_altstack) {
    // A stack overflow cannot run a handler on the overflowed stack. Keep an alternate stack someone else set
    // (AddressSanitizer sets one per thread and unmaps it when the thread ends); otherwise map one, page-aligned,
    // for the life of the thread (ingest threads live as long as ferryd).
    stack_t cur{};
    if (sigaltstack(nullptr, &cur) == 0 && !(cur.ss_flags & SS_DISABLE)) {
      t_altstack = true;
      return;
    }
    const size_t size = 64 * 1024;
    void* mem = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return;
    stack_t ss{};
    ss.ss_sp = mem;
    ss.ss_size = size;
    t_altstack = sigaltstack(&ss, nullptr) == 0;
    if (!t_altstack) ::munmap(mem, size);
  }
}

bool CrashGuard::Poisoned(uint64_t hash) const {
  for (const Strike& k : file_->strike)
    if (k.strikes >= kPoison && k.hash == hash) return true;
  return false;
}

void CrashGuard::Cleared(uint64_t hash) {
  if (!any_strikes_) return;
  for (Strike& k : file_->strike)
    if (k.strikes != 0 && k.hash == hash) k.strikes = 0;
}

size_t CrashGuard::suspects() const {
  size_t n = 0;
  for (const Strike& k : file_->strike) n += k.strikes != 0;
  return n;
}

}  // namespace ferry
