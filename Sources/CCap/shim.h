// libcap: capability sets, bounding set, securebits.
#include <sys/capability.h>
#include <linux/securebits.h>
