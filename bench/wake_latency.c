// How long it takes to wake a process that has slept on a socket: the cost every pipeline stage pays per token.
// One process sends a timestamp every GAP microseconds (spinning in between, like a stage computing); the other,
// blocked in read(), records now − timestamp when it wakes. Prints the median and 90th percentile.
//   gcc -O2 bench/wake_latency.c -o /tmp/wake && /tmp/wake CPU_A CPU_B GAP_US     (CPU -1: not pinned)
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>
#include <sys/wait.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static void pin(int c){ if(c<0) return; cpu_set_t s; CPU_ZERO(&s); CPU_SET(c,&s); sched_setaffinity(0,sizeof s,&s);}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){ int ca=atoi(argv[1]), cb=atoi(argv[2]); double gap=atof(argv[3])*1e-6; int n=2000; int sv[2]; socketpair(AF_UNIX,SOCK_STREAM,0,sv);
  pid_t p=fork(); if(p==0){ pin(cb); double*lat=malloc(n*sizeof(double)); for(int i=0;i<n;i++){ double ts; read(sv[1],&ts,8); lat[i]=now()-ts; write(sv[1],&ts,8);} qsort(lat,n,8,cmp); printf("cpus %d %d gap %.0f us: wake median %.1f us p90 %.1f\n",ca,cb,gap*1e6,lat[n/2]*1e6,lat[n*9/10]*1e6); fflush(stdout); _exit(0);}
  pin(ca); for(int i=0;i<n;i++){ double t0=now(); while(now()-t0<gap); double ts=now(); write(sv[0],&ts,8); read(sv[0],&ts,8);} waitpid(p,0,0); }
