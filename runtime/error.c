/* error.c — the thread-local error message and Ctrl-C (an op fails "interrupted").
 *
 * Every failing entry point calls ms_fail(), which formats the message that
 * ms_last_error() returns until the next failure on the same thread. The argument
 * checks that build most messages are in check.c, the thread pool in threads.c, dtype
 * and device names in dtype.c. */
#include "internal.h"
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char ms_error_buf[1024] = "no error";

const char *ms_last_error(void) { return ms_error_buf; }
int ms_abi_version(void) { return MS_ABI_VERSION; }

int ms_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ms_error_buf, sizeof ms_error_buf, fmt, ap);
  va_end(ap);
  return -1;
}

/* ---- Ctrl-C ------------------------------------------------------------------------
 * Only a flag is set in the handler (async-signal-safe); ops fail on entry while it
 * is set, which unwinds a running Lua computation as an ordinary error. */
volatile int ms_interrupt_flag = 0;
static struct sigaction ms_old_sigint;
static int ms_sigint_installed = 0;

/* The flag counts presses not yet handled. A Lua loop that calls no op and runs
 * JIT-compiled (where debug hooks never fire) cannot see it, so the third pending
 * press falls back to the default action and ends the process. */
static void ms_on_sigint(int sig) {
  if (++ms_interrupt_flag >= 3) {
    signal(sig, SIG_DFL);
    raise(sig);
  }
}

void ms_sigint_install(void) {
  if (ms_sigint_installed) return;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = ms_on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &ms_old_sigint);
  ms_sigint_installed = 1;
}

void ms_sigint_uninstall(void) {
  if (!ms_sigint_installed) return;
  sigaction(SIGINT, &ms_old_sigint, NULL);
  ms_sigint_installed = 0;
}

int ms_interrupt_pending(void) { return ms_interrupt_flag; }
void ms_interrupt_clear(void) { ms_interrupt_flag = 0; }

int ms_fail_interrupted(const char *fn) {
  ms_interrupt_flag = 0;
  return ms_fail("%s: interrupted (Ctrl-C)", fn);
}
