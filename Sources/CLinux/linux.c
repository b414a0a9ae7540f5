#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include "edgelab_linux.h"
#ifdef __linux__
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#include <errno.h>
#include <spawn.h>

int el_o_direct(void) {
#ifdef O_DIRECT
  return O_DIRECT;
#else
  return 0;
#endif
}

int el_set_parent_death_signal(int sig) {
#ifdef __linux__
  return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0);
#else
  (void)sig;
  return -1;
#endif
}

int el_enter_netns(const char *path) {
#ifdef __linux__
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int r = setns(fd, CLONE_NEWNET);
  close(fd);
  return r;
#else
  (void)path;
  return -1;
#endif
}

int el_pidfd_open(int pid) {
#if defined(__linux__) && defined(SYS_pidfd_open)
  return (int)syscall(SYS_pidfd_open, pid, 0);
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

int el_keep_freed_memory(int mmap_threshold, int trim_threshold, int top_pad) {
#ifdef M_MMAP_THRESHOLD
  return mallopt(M_MMAP_THRESHOLD, mmap_threshold) && mallopt(M_TRIM_THRESHOLD, trim_threshold) &&
         mallopt(M_TOP_PAD, top_pad);
#else
  (void)mmap_threshold; (void)trim_threshold; (void)top_pad;
  return 0;
#endif
}

int el_spawn_close_from(void *file_actions, int from) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  return posix_spawn_file_actions_addclosefrom_np((posix_spawn_file_actions_t *)file_actions, from) == 0 ? 0 : -1;
#else
  (void)file_actions;
  (void)from;
  return -1;
#endif
}

int el_set_affinity(int tid, const int *cpus, int count) {
#ifdef __linux__
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int i = 0; i < count; i++) {
    if (cpus[i] < 0 || cpus[i] >= CPU_SETSIZE) {
      errno = EINVAL;
      return -1;
    }
    CPU_SET(cpus[i], &set);
  }
  return sched_setaffinity(tid, sizeof set, &set);
#else
  (void)tid;
  (void)cpus;
  (void)count;
  errno = EINVAL;
  return -1;
#endif
}

int el_get_affinity(int *out, int capacity) {
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
  int n = 0;
  for (int c = 0; c < CPU_SETSIZE && n < capacity; c++)
    if (CPU_ISSET(c, &set)) out[n++] = c;
  return n;
#else
  (void)out;
  (void)capacity;
  errno = EINVAL;
  return -1;
#endif
}

int el_set_idle_policy(int idle) {
#ifdef __linux__
  struct sched_param param = {0};
  return sched_setscheduler(0, (idle ? SCHED_IDLE : SCHED_OTHER) | SCHED_RESET_ON_FORK, &param);
#else
  (void)idle;
  errno = EINVAL;
  return -1;
#endif
}
