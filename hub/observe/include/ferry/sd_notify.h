// The systemd notification protocol (sd_notify(3)) without libsystemd: one datagram to $NOTIFY_SOCKET.
// systemd documents the protocol as stable and meant to be spoken directly; linking libsystemd for it cost
// ferryd about 1 MB of resident memory (libsystemd, libgcrypt, libgpg-error; idle VmRSS 12.7 -> 11.7 MB).
#pragma once

namespace ferry {

// Sends `state` (for example "READY=1", "WATCHDOG=1", "STOPPING=1") to the socket $NOTIFY_SOCKET names: a
// filesystem path, or "@name" for an abstract socket. Returns true when the datagram was sent; false, doing
// nothing, when the variable is unset or not a socket name, or the send fails (no systemd listening is not
// an error for a daemon). Never blocks; safe from any thread.
bool SdNotify(const char* state);

}  // namespace ferry
