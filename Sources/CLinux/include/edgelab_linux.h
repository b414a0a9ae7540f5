#ifndef EDGELAB_LINUX_H
#define EDGELAB_LINUX_H
// Linux calls and flags that Swift's Glibc module does not expose (no _GNU_SOURCE, variadic prctl).

// The O_DIRECT open flag (0 where unsupported).
int el_o_direct(void);
// Asks the kernel to send `sig` to this process when its parent exits (prctl PR_SET_PDEATHSIG). 0 on success.
int el_set_parent_death_signal(int sig);
// Moves the calling thread into the network namespace at `path` (e.g. /var/run/netns/NAME). 0 on success.
int el_enter_netns(const char *path);
// A file descriptor that becomes readable when process `pid` exits (pidfd_open); -1 with errno set on failure.
int el_pidfd_open(int pid);
// Keeps memory freed by large allocations in the heap for reuse (mallopt: mmap threshold `mmap_threshold` bytes,
// trim threshold and top pad as given). 1 when glibc accepted every setting.
int el_keep_freed_memory(int mmap_threshold, int trim_threshold, int top_pad);
// Adds "close every descriptor from `from` up" to posix_spawn file actions (glibc 2.34+). 0 on success, -1 where
// the C library cannot.
int el_spawn_close_from(void *file_actions, int from);
// Restricts thread `tid` (0: the calling thread) to the `count` CPUs in `cpus`. 0 on success, -1 with errno set
// (EINVAL for a CPU number outside the kernel's set, or where the platform cannot).
int el_set_affinity(int tid, const int *cpus, int count);
// Writes the CPUs the calling thread may run on into `out` (at most `capacity`), in increasing order; returns their
// number, or -1 with errno set.
int el_get_affinity(int *out, int capacity);
// Sets the calling thread's scheduling policy: `idle` nonzero for SCHED_IDLE (it runs only when no other thread
// wants the CPU, and any waking thread preempts it), zero for the normal policy; children it starts get the normal
// policy either way. 0 on success, -1 with errno set.
int el_set_idle_policy(int idle);
#endif
