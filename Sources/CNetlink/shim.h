// libnl-3 and libnl-route-3: the route, link, VLAN and address objects used by
// the interface manager.
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <netlink/cache.h>
#include <netlink/msg.h>
#include <netlink/errno.h>
#include <netlink/route/link.h>
#include <netlink/route/link/vlan.h>
#include <netlink/route/addr.h>
#include <netlink/route/route.h>
#include <netlink/route/nexthop.h>
#include <linux/if.h>
#include <linux/rtnetlink.h>

// The kernel's errno of the last failed request on a socket. libnl folds errno values
// into its own coarser NLE_* codes; error messages must name the kernel's reason
// ("File exists"), so an error callback keeps the original.
static int bloo_nl_keep_errno(struct sockaddr_nl *who, struct nlmsgerr *error, void *slot) {
    (void)who;
    *(int *)slot = -error->error;
    return NL_STOP;
}

/// Makes every failed request on `sock` store the kernel's errno in `*slot`.
static inline int bloo_nl_capture_errno(struct nl_sock *sock, int *slot) {
    return nl_socket_modify_err_cb(sock, NL_CB_CUSTOM, bloo_nl_keep_errno, slot);
}
