// Networking and process declarations the Swift Glibc module does not export (GNU extensions and
// raw syscalls), for the `sockets (networking)` block of AsyncTraceRuntime/System.swift.
#ifndef NET_SYSTEM_H
#define NET_SYSTEM_H
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <spawn.h>
#include <unistd.h>

// GNU extensions (declared as glibc defines them; the Glibc module is built without _GNU_SOURCE).
int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags);
const char *sigabbrev_np(int sig);
int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *actions, const char *path);

// pidfd_open has no glibc wrapper before 2.36's headers reach Swift; syscall(2) is variadic, so wrap it.
static inline int net_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

// A sockaddr_storage seen as the concrete families (Swift cannot cast struct pointers freely).
static inline struct sockaddr *net_sockaddr(struct sockaddr_storage *s) { return (struct sockaddr *)s; }
static inline struct sockaddr_in *net_sockaddr_in(struct sockaddr_storage *s) { return (struct sockaddr_in *)s; }
static inline struct sockaddr_in6 *net_sockaddr_in6(struct sockaddr_storage *s) { return (struct sockaddr_in6 *)s; }
static inline struct sockaddr_un *net_sockaddr_un(struct sockaddr_storage *s) { return (struct sockaddr_un *)s; }

// wait(2) status decoding (macros in C).
static inline int net_wifexited(int status) { return WIFEXITED(status); }
static inline int net_wexitstatus(int status) { return WEXITSTATUS(status); }
static inline int net_wifsignaled(int status) { return WIFSIGNALED(status); }
static inline int net_wtermsig(int status) { return WTERMSIG(status); }
#endif
