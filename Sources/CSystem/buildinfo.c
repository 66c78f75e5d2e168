// Build identity. The Makefile passes BLOO_VERSION, BLOO_GIT_REV and
// BLOO_BUILD_DATE (the commit date, so that builds are reproducible) as bare
// tokens; they are stringified here to avoid shell-quoting through swift build.
#include "CSystem.h"

#define BLOO_STRINGIFY_(x) #x
#define BLOO_STRINGIFY(x) BLOO_STRINGIFY_(x)

#ifdef BLOO_VERSION
const char *bloo_build_version(void) { return BLOO_STRINGIFY(BLOO_VERSION); }
#else
const char *bloo_build_version(void) { return "0.0.0-dev"; }
#endif

#ifdef BLOO_GIT_REV
const char *bloo_build_revision(void) { return BLOO_STRINGIFY(BLOO_GIT_REV); }
#else
const char *bloo_build_revision(void) { return "unknown"; }
#endif

#ifdef BLOO_BUILD_DATE
const char *bloo_build_date(void) { return BLOO_STRINGIFY(BLOO_BUILD_DATE); }
#else
const char *bloo_build_date(void) { return "unknown"; }
#endif
