/* fleet_tcp_nodelay: TCP_NODELAY on every TCP socket the program connects.
 *
 * paho.mqtt.c 1.3 never sets TCP_NODELAY and has no hook to reach its
 * socket. With Nagle's algorithm on, every small packet that follows another
 * one waits for the broker's delayed ACK: measured here, a kiosk's request
 * took 44 or 88 ms to be answered instead of under 2 ms.
 *
 * So a program that wants it links this file (CMake target
 * fleet_tcp_nodelay, an object library: common/CMakeLists.txt) and this
 * file defines connect(): paho's call resolves to it (an executable's
 * symbols come before a shared library's), it sets TCP_NODELAY on TCP
 * sockets and calls the next connect() (libc, or a sanitizer's
 * interceptor). Other libraries' TCP sockets of that program get it too,
 * which costs nothing for request/response traffic. libfleetcommon itself
 * does not contain it: a program that links the library without asking
 * keeps libc's connect(). */
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);

static pthread_once_t next_once = PTHREAD_ONCE_INIT;
static connect_fn next_connect;

static void find_next_connect(void) {
  void *sym = dlsym(RTLD_NEXT, "connect");
  memcpy(&next_connect, &sym, sizeof next_connect);
}

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
  pthread_once(&next_once, find_next_connect);
  int type = 0;
  socklen_t type_len = sizeof type;
  if (addr && (addr->sa_family == AF_INET || addr->sa_family == AF_INET6) &&
      getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) == 0 && type == SOCK_STREAM) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return next_connect(fd, addr, len);
}
