#define _GNU_SOURCE
#include <fcntl.h>
#include "edgelab_linux.h"
#ifdef __linux__
#include <sys/prctl.h>
#endif

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
