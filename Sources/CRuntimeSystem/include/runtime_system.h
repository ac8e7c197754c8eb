// Linux headers the Swift Glibc module does not export (epoll, eventfd, signalfd), for
// AsyncTraceRuntime/System.swift — the runtime's only syscall file. Declarations only.
#ifndef RUNTIME_SYSTEM_H
#define RUNTIME_SYSTEM_H
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <signal.h>
#include <netdb.h>
#include <dirent.h>
#include <sys/stat.h>
#include "promise_pool.h"

// stat(2) by path: Swift sees `stat` as the struct's initializer, so give the function another name.
static inline int rt_stat_path(const char *path, struct stat *st) { return stat(path, st); }

// GNU extensions the Glibc module is built without (_GNU_SOURCE); declared as glibc >= 2.32 defines them.
const char *strerrorname_np(int errnum);
int pipe2(int pipefd[2], int flags);
// This thread's EventLoop (an unretained pointer; the pthread key that owns it runs the release at
// thread exit). A `__thread` load is cheaper than pthread_getspecific on every setImmediate/await.
extern __thread void *rt_current_loop_tls;
static inline void *rt_current_loop(void) { return rt_current_loop_tls; }
static inline void rt_set_current_loop(void *loop) { rt_current_loop_tls = loop; }

#endif
