// ThreadSanitizer build only (SIMARRAY_TSAN, `make tsan`, docs/threads.md): tells TSan
// about every absl::Mutex, absl::CondVar and absl::Notification operation.
//
// Why: Debian's libabsl_synchronization is not built with TSan, so its Mutex calls none of
// the __tsan_mutex_* hooks an instrumented Abseil calls, and its atomics are invisible to
// TSan. Without this file TSan sees no happens-before edge through any absl::Mutex and
// reports every guarded member as a race. This file defines the Mutex and CondVar entry
// points in the executable, which the dynamic linker then prefers over the library's (the
// TSan build links with -rdynamic, so gRPC's own calls come here too); each announces the
// operation to TSan and calls the library's function, found with dlsym(RTLD_NEXT).
//
// The model is the one an instrumented Abseil uses (absl/base/internal/
// tsan_mutex_interface.h): pre_lock before the library call, post_lock after it;
// pre_unlock before, post_unlock after. TSan ignores memory accesses between pre_ and post_,
// which covers the absl::Condition functions the library evaluates inside Lock, Await and
// Unlock (on the waiting thread or on the one unlocking): they run with the mutex held, and
// their reads are not checked (an instrumented Abseil checks them; this cannot). Await and
// CondVar waits release and take the mutex again inside the library, so they are
// announced as an unlock followed by a lock, whether or not the library really waited.
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

#if !defined(__clang__) || !__has_feature(thread_sanitizer)
#error "absl_sync_tsan.cc belongs to the ThreadSanitizer build only (SIMARRAY_TSAN)"
#endif

namespace {

#define SIMARRAY_STR2(x) #x
#define SIMARRAY_STR(x) SIMARRAY_STR2(x)

// The library's symbol for NAME (a mangled name with the inline namespace left out, as
// "5Mutex4LockEv" for absl::<ns>::Mutex::Lock()); aborts if the library lacks it.
void* Real(const char* nested, const char* rest) {
  const std::string ns = SIMARRAY_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  const std::string name = std::string(nested) + "4absl" + std::to_string(ns.size()) + ns + rest;
  void* fn = dlsym(RTLD_NEXT, name.c_str());
  if (fn == nullptr) {
    std::fprintf(stderr, "absl_sync_tsan: %s not found in libabsl_synchronization\n", name.c_str());
    std::abort();
  }
  return fn;
}

template <typename Fn>
Fn Lookup(const char* nested, const char* rest) {
  return reinterpret_cast<Fn>(Real(nested, rest));
}

// The library's functions call each other through the same entry points (AwaitWithTimeout
// calls AwaitWithDeadline, LockWhenWithTimeout calls LockWhenWithDeadline, Notification
// calls LockWhenWithTimeout): only the outermost call on a thread is announced, the ones
// it makes go straight to the library.
thread_local int depth = 0;
struct Outermost {
  const bool outer = depth++ == 0;
  ~Outermost() { --depth; }
};

constexpr unsigned kRead = __tsan_mutex_read_lock;
constexpr unsigned kTry = __tsan_mutex_try_lock;
constexpr unsigned kTryFailed = __tsan_mutex_try_lock_failed;

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

// The mangled names below are those of Abseil 20220623 (Debian 12); a missing one aborts
// at first use, naming it.
#define SIMARRAY_REAL(rest, ...) static const auto real = Lookup<__VA_ARGS__>("_ZN", rest)

void Mutex::Lock() {
  SIMARRAY_REAL("5Mutex4LockEv", void (*)(Mutex*));
  Outermost call;
  if (!call.outer) return real(this);
  __tsan_mutex_pre_lock(this, 0);
  real(this);
  __tsan_mutex_post_lock(this, 0, 0);
}

void Mutex::ReaderLock() {
  SIMARRAY_REAL("5Mutex10ReaderLockEv", void (*)(Mutex*));
  Outermost call;
  if (!call.outer) return real(this);
  __tsan_mutex_pre_lock(this, kRead);
  real(this);
  __tsan_mutex_post_lock(this, kRead, 0);
}

bool Mutex::TryLock() {
  SIMARRAY_REAL("5Mutex7TryLockEv", bool (*)(Mutex*));
  Outermost call;
  if (!call.outer) return real(this);
  __tsan_mutex_pre_lock(this, kTry);
  const bool locked = real(this);
  __tsan_mutex_post_lock(this, kTry | (locked ? 0 : kTryFailed), 0);
  return locked;
}

bool Mutex::ReaderTryLock() {
  SIMARRAY_REAL("5Mutex13ReaderTryLockEv", bool (*)(Mutex*));
  Outermost call;
  if (!call.outer) return real(this);
  __tsan_mutex_pre_lock(this, kRead | kTry);
  const bool locked = real(this);
  __tsan_mutex_post_lock(this, kRead | kTry | (locked ? 0 : kTryFailed), 0);
  return locked;
}

void Mutex::Unlock() {
  SIMARRAY_REAL("5Mutex6UnlockEv", void (*)(Mutex*));
  Outermost call;
  if (!call.outer) return real(this);
  __tsan_mutex_pre_unlock(this, 0);
  real(this);
  __tsan_mutex_post_unlock(this, 0);
}

void Mutex::ReaderUnlock() {
  SIMARRAY_REAL("5Mutex12ReaderUnlockEv", void (*)(Mutex*));
  Outermost call;
  if (!call.outer) return real(this);
  __tsan_mutex_pre_unlock(this, kRead);
  real(this);
  __tsan_mutex_post_unlock(this, kRead);
}

void Mutex::LockWhen(const Condition& cond) {
  SIMARRAY_REAL("5Mutex8LockWhenERKNS0_9ConditionE", void (*)(Mutex*, const Condition&));
  Outermost call;
  if (!call.outer) return real(this, cond);
  __tsan_mutex_pre_lock(this, 0);
  real(this, cond);
  __tsan_mutex_post_lock(this, 0, 0);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  SIMARRAY_REAL("5Mutex14ReaderLockWhenERKNS0_9ConditionE", void (*)(Mutex*, const Condition&));
  Outermost call;
  if (!call.outer) return real(this, cond);
  __tsan_mutex_pre_lock(this, kRead);
  real(this, cond);
  __tsan_mutex_post_lock(this, kRead, 0);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  SIMARRAY_REAL("5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE",
                bool (*)(Mutex*, const Condition&, absl::Duration));
  Outermost call;
  if (!call.outer) return real(this, cond, timeout);
  __tsan_mutex_pre_lock(this, 0);
  const bool held = real(this, cond, timeout);
  __tsan_mutex_post_lock(this, 0, 0);  // locked either way
  return held;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  SIMARRAY_REAL("5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE",
                bool (*)(Mutex*, const Condition&, absl::Time));
  Outermost call;
  if (!call.outer) return real(this, cond, deadline);
  __tsan_mutex_pre_lock(this, 0);
  const bool held = real(this, cond, deadline);
  __tsan_mutex_post_lock(this, 0, 0);
  return held;
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  SIMARRAY_REAL("5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE",
                bool (*)(Mutex*, const Condition&, absl::Duration));
  Outermost call;
  if (!call.outer) return real(this, cond, timeout);
  __tsan_mutex_pre_lock(this, kRead);
  const bool held = real(this, cond, timeout);
  __tsan_mutex_post_lock(this, kRead, 0);
  return held;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  SIMARRAY_REAL("5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE",
                bool (*)(Mutex*, const Condition&, absl::Time));
  Outermost call;
  if (!call.outer) return real(this, cond, deadline);
  __tsan_mutex_pre_lock(this, kRead);
  const bool held = real(this, cond, deadline);
  __tsan_mutex_post_lock(this, kRead, 0);
  return held;
}

namespace {
// Await and CondVar waits: the library may release the mutex and take it again.
void WaitBegins(Mutex* mu) {
  __tsan_mutex_pre_unlock(mu, 0);
  __tsan_mutex_post_unlock(mu, 0);
  __tsan_mutex_pre_lock(mu, 0);
}
void WaitEnds(Mutex* mu) { __tsan_mutex_post_lock(mu, 0, 0); }
}  // namespace

void Mutex::Await(const Condition& cond) {
  SIMARRAY_REAL("5Mutex5AwaitERKNS0_9ConditionE", void (*)(Mutex*, const Condition&));
  Outermost call;
  if (!call.outer) return real(this, cond);
  WaitBegins(this);
  real(this, cond);
  WaitEnds(this);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
  SIMARRAY_REAL("5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE",
                bool (*)(Mutex*, const Condition&, absl::Duration));
  Outermost call;
  if (!call.outer) return real(this, cond, timeout);
  WaitBegins(this);
  const bool held = real(this, cond, timeout);
  WaitEnds(this);
  return held;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline) {
  SIMARRAY_REAL("5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE",
                bool (*)(Mutex*, const Condition&, absl::Time));
  Outermost call;
  if (!call.outer) return real(this, cond, deadline);
  WaitBegins(this);
  const bool held = real(this, cond, deadline);
  WaitEnds(this);
  return held;
}

Mutex::~Mutex() {
  SIMARRAY_REAL("5MutexD2Ev", void (*)(Mutex*));
  Outermost call;
  if (call.outer) __tsan_mutex_destroy(this, 0);
  real(this);
}

void CondVar::Wait(Mutex* mu) {
  SIMARRAY_REAL("7CondVar4WaitEPNS0_5MutexE", void (*)(CondVar*, Mutex*));
  Outermost call;
  if (!call.outer) return real(this, mu);
  WaitBegins(mu);
  real(this, mu);
  WaitEnds(mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  SIMARRAY_REAL("7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE",
                bool (*)(CondVar*, Mutex*, absl::Duration));
  Outermost call;
  if (!call.outer) return real(this, mu, timeout);
  WaitBegins(mu);
  const bool timed_out = real(this, mu, timeout);
  WaitEnds(mu);
  return timed_out;
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  SIMARRAY_REAL("7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE",
                bool (*)(CondVar*, Mutex*, absl::Time));
  Outermost call;
  if (!call.outer) return real(this, mu, deadline);
  WaitBegins(mu);
  const bool timed_out = real(this, mu, deadline);
  WaitEnds(mu);
  return timed_out;
}

// Notification: Notify releases, a wait that saw it acquires (its fast path reads an atomic
// inside the library, which TSan does not see). The Mutex calls it makes are nested.
void Notification::Notify() {
  SIMARRAY_REAL("12Notification6NotifyEv", void (*)(Notification*));
  Outermost call;
  if (call.outer) __tsan_release(this);
  real(this);
}

void Notification::WaitForNotification() const {
  static const auto real =
      Lookup<void (*)(const Notification*)>("_ZNK", "12Notification19WaitForNotificationEv");
  Outermost call;
  real(this);
  if (call.outer) __tsan_acquire(const_cast<Notification*>(this));
}

bool Notification::WaitForNotificationWithTimeout(absl::Duration timeout) const {
  static const auto real = Lookup<bool (*)(const Notification*, absl::Duration)>(
      "_ZNK", "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
  Outermost call;
  const bool notified = real(this, timeout);
  if (call.outer && notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(absl::Time deadline) const {
  static const auto real = Lookup<bool (*)(const Notification*, absl::Time)>(
      "_ZNK", "12Notification31WaitForNotificationWithDeadlineENS0_4TimeE");
  Outermost call;
  const bool notified = real(this, deadline);
  if (call.outer && notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

ABSL_NAMESPACE_END
}  // namespace absl
