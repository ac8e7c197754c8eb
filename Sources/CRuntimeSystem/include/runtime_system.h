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

// GNU extensions the Glibc module is built without (_GNU_SOURCE); declared as glibc >= 2.32 defines them.
const char *strerrorname_np(int errnum);
int pipe2(int pipefd[2], int flags);
#endif
