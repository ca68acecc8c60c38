/*
 * The Linux build only: mcsim resets SIGPIPE to its default action once it has connected to the debugger, so a
 * front-end that resets a connection would kill the terminal (exit 141). A write to a reset socket must instead fail
 * with EPIPE, which the SDK's TCP module reports as an error (docs/moddable.md, "Linux target only").
 */
#include <signal.h>
#include "xsmc.h"

void xs_lin_ignore_sigpipe(xsMachine *the)
{
	signal(SIGPIPE, SIG_IGN);
}
