#ifndef EDGELAB_KERNELS_INTERNAL_H
#define EDGELAB_KERNELS_INTERNAL_H
// What kernels.c and quant.c share (not part of the module's interface).
#include <stddef.h>
#include <stdint.h>
#include <string.h>

// IEEE half to float, exactly (subnormals normalised).
static inline float el_half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((man & 0x400) == 0) { man <<= 1; exp--; }
      man &= 0x3ff;
      u = sign | (exp << 23) | (man << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000 | (man << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &u, 4);
  return f;
}

// A matrix-vector kernel for a group of 1–4 inputs: y[k * ys + r] for inputs k of the group, rows [r0, r1).
typedef void (*el_group_fn)(const void *w, size_t cols, const float *x, size_t xs, float *y, size_t ys, size_t r0,
                            size_t r1);

// Runs a batch through `fns` (fns[n − 1] takes n inputs), four inputs at a time.
void el_run_groups(const el_group_fn fns[4], const void *w, size_t cols, const float *x, size_t xs, size_t batch,
                   float *y, size_t ys, size_t r0, size_t r1);

// Whether the AVX-512 kernels run on this CPU.
int el_internal_avx512(void);
#endif
