// record.hpp — one text form of a call, "name(i7,f1.5,p0x300)", written alike by the fake
// plugin (what it received) and the caller (what it passed): tests/cuda_lazy_spec.lua.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <type_traits>

template <class T> static std::string ms_rec_one(T v) {
  char b[64];
  if constexpr (std::is_floating_point_v<T>)
    std::snprintf(b, sizeof b, "f%.17g", (double)v);
  else if constexpr (std::is_pointer_v<T>)
    std::snprintf(b, sizeof b, "p%#llx", (unsigned long long)(uintptr_t)v);
  else
    std::snprintf(b, sizeof b, "i%lld", (long long)v);
  return b;
}

template <class... A> static std::string ms_rec(const char *name, A... a) {
  std::string s = std::string(name) + "(";
  const char *sep = "";
  (void)sep;  // no arguments: unused
  ((s += sep, s += ms_rec_one(a), sep = ","), ...);
  return s + ")";
}
