// call_all.cpp — calls every CUDA entry point of a CUDA build's libmoonstep.so (its
// trampolines, runtime/cuda_loader.c) with distinct values (per entry point and position,
// of each parameter's type, deduced from the prototype: no argument names involved) while
// MOONSTEP_CUDA_PLUGIN names the fake plugin (fake_plugin.cpp), then compares what the
// fake received with what was passed. Prints "ok <n> calls" or each difference; exit 1.
// Run by tests/cuda_lazy_spec.lua; linked with the library under test.
#include <dlfcn.h>
#include <cstring>
#include <utility>
#include "cuda_plugin.h"
#include "record.hpp"

static std::string expected;
static int failures = 0, calls = 0;

template <class T> static T value(int call, int pos) {
  if constexpr (std::is_floating_point_v<T>) return (T)(call * 100 + pos + 0.5);
  else if constexpr (std::is_pointer_v<T>) return reinterpret_cast<T>((uintptr_t)(0x10000 * call + 0x100 * pos));
  else return (T)(call * 100 + pos);
}

template <class... A, size_t... I>
static void call_with(const char *name, int (*f)(A...), std::index_sequence<I...>) {
  ++calls;
  expected += ms_rec(name, value<A>(calls, (int)I + 1)...) + "\n";
  int rc = f(value<A>(calls, (int)I + 1)...);
  if (rc != 40 + (int)sizeof...(A)) {
    std::printf("%s returned %d, the fake's %d\n", name, rc, 40 + (int)sizeof...(A));
    failures++;
  }
}
template <class... A> static void call(const char *name, int (*f)(A...)) {
  call_with(name, f, std::index_sequence_for<A...>{});
}

int main(void) {
  if (ms_cuda_device_count() != 3) {
    std::printf("ms_cuda_device_count() is %d, the fake's 3: %s\n", ms_cuda_device_count(), ms_cuda_why());
    return 1;
  }
#define CALL_(name, ...) call(#name, &name);
#define CALL_OPT_(NAME, NSTATE) call("ms_cuda_optim_" #NAME, &ms_cuda_optim_##NAME);
  MS_CUDA_ENTRIES(CALL_)
  MS_OPTIM_RULES(CALL_OPT_)
  MS_CUDA_HAND_ENTRIES(CALL_)
  call("ms_cuda_check", &ms_cuda_check);
  ms_cuda_free((void *)0x4321);
  expected += "ms_cuda_free(p0x4321)\n";
  ms_cuda_free(NULL);  // not forwarded
  void *h = dlopen(std::getenv("MOONSTEP_CUDA_PLUGIN"), RTLD_NOW | RTLD_NOLOAD);
  auto log = h ? (const char *(*)(void))dlsym(h, "ms_fake_log") : nullptr;
  if (!log) { std::printf("the fake plugin is not loaded\n"); return 1; }
  std::string got = log();
  if (got != expected) {  // the first differing line
    size_t a = 0;
    while (a < got.size() && a < expected.size() && got[a] == expected[a]) a++;
    size_t line = expected.rfind('\n', a);
    line = line == std::string::npos ? 0 : line + 1;
    std::printf("the fake received\n  %s\nwhere the caller passed\n  %s\n",
                got.substr(line, got.find('\n', line) - line).c_str(),
                expected.substr(line, expected.find('\n', line) - line).c_str());
    failures++;
  }
  if (failures) return 1;
  std::printf("ok %d calls\n", calls + 1);
  return 0;
}
