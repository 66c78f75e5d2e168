// Build identity. `make static` writes identity.h (scripts/identity.sh) with
// BLOO_VERSION, BLOO_GIT_REV and BLOO_BUILD_DATE (the commit date, so that builds are
// reproducible). A plain `swift build` has no identity.h and says so.
#include "CSystem.h"

#if __has_include("identity.h")
#include "identity.h"
#endif

#ifdef BLOO_VERSION
const char *bloo_build_version(void) { return BLOO_VERSION; }
#else
const char *bloo_build_version(void) { return "0.0.0-dev"; }
#endif

#ifdef BLOO_GIT_REV
const char *bloo_build_revision(void) { return BLOO_GIT_REV; }
#else
const char *bloo_build_revision(void) { return "unknown"; }
#endif

#ifdef BLOO_BUILD_DATE
const char *bloo_build_date(void) { return BLOO_BUILD_DATE; }
#else
const char *bloo_build_date(void) { return "unknown"; }
#endif
