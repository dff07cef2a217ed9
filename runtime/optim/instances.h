/* optim/instances.h — instantiates the template part of the header OPT_INCLUDE (a rule
 * header, or optim/rules.h for all of them) for float (names ending in _f32) and double
 * (_f64), with the C loops' qualifiers. Include after defining OPT_INCLUDE:
 *   #define OPT_INCLUDE "optim/rules.h"
 *   #include "optim/instances.h"
 * (CUDA files instantiate float only, with __host__ __device__ qualifiers.) */
#ifndef OPT_FN
#define OPT_FN static inline
#endif
#define OPT_T float
#define OPT_SFX f32
#define OPT_FMA fmaf
#define OPT_SQRT sqrtf
#include OPT_INCLUDE
#undef OPT_T
#undef OPT_SFX
#undef OPT_FMA
#undef OPT_SQRT
#define OPT_T double
#define OPT_SFX f64
#define OPT_FMA fma
#define OPT_SQRT sqrt
#include OPT_INCLUDE
#undef OPT_T
#undef OPT_SFX
#undef OPT_FMA
#undef OPT_SQRT
#undef OPT_INCLUDE
