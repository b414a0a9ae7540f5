#include "edgelab_kernels.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define PAUSE() _mm_pause()
#else
#define PAUSE() do {} while (0)
#endif

#define MAX_THREADS 64
#define SPIN_ROUNDS 200000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t submit = PTHREAD_MUTEX_INITIALIZER;  // one job at a time
static int started = 0;
static _Atomic uint64_t generation = 0;
static _Atomic int pending = 0;
static el_task_fn job_fn;
static void *job_ctx;
static int job_count;

// What a new pool thread starts from: its task index, and the job generation current when it was created
// (jobs before it are not its to acknowledge).
typedef struct {
  int index;
  uint64_t seen;
} worker_start;

static void *worker(void *arg) {
  worker_start start = *(worker_start *)arg;
  free(arg);
  int index = start.index;  // this thread runs task `index`
  uint64_t seen = start.seen;
  for (;;) {
    int spins = 0;
    uint64_t g;
    while ((g = atomic_load_explicit(&generation, memory_order_acquire)) == seen) {
      if (++spins < SPIN_ROUNDS) { PAUSE(); continue; }
      pthread_mutex_lock(&lock);
      while ((g = atomic_load_explicit(&generation, memory_order_acquire)) == seen) pthread_cond_wait(&wake, &lock);
      pthread_mutex_unlock(&lock);
      break;
    }
    seen = g;
    // Every pool thread acknowledges every job, taking part or not: the next job is published only after all
    // have, so a thread can never read the next job's parameters while it believes it is in this one.
    if (index < job_count) job_fn(job_ctx, index);
    atomic_fetch_sub_explicit(&pending, 1, memory_order_acq_rel);
  }
  return 0;
}

void el_pool_set_threads(int threads) {
  pthread_mutex_lock(&submit);
  if (threads > MAX_THREADS) threads = MAX_THREADS;
  while (started < threads - 1) {
    pthread_t t;
    worker_start *start = malloc(sizeof *start);
    if (!start) break;
    start->index = started + 1;
    start->seen = atomic_load_explicit(&generation, memory_order_acquire);  // no job runs: we hold `submit`
    if (pthread_create(&t, 0, worker, start) != 0) { free(start); break; }
    pthread_detach(t);
    started++;
  }
  pthread_mutex_unlock(&submit);
}

void el_parallel(int count, el_task_fn fn, void *ctx) {
  if (count <= 1 || started == 0) {
    for (int i = 0; i < count; i++) fn(ctx, i);
    return;
  }
  pthread_mutex_lock(&submit);
  int n = count <= started + 1 ? count : started + 1;
  job_fn = fn;
  job_ctx = ctx;
  job_count = n;
  atomic_store_explicit(&pending, started, memory_order_release);
  pthread_mutex_lock(&lock);
  atomic_fetch_add_explicit(&generation, 1, memory_order_acq_rel);
  pthread_cond_broadcast(&wake);
  pthread_mutex_unlock(&lock);
  fn(ctx, 0);
  for (int i = n; i < count; i++) fn(ctx, i);  // more tasks than threads: the caller takes the rest
  while (atomic_load_explicit(&pending, memory_order_acquire) > 0) PAUSE();
  pthread_mutex_unlock(&submit);
}
