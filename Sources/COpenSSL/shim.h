// OpenSSL 3: TLS for the tunnel, Ed25519 for update bundles, SHA-256,
// PBKDF2/scrypt for console passwords, HMAC for tunnel authentication.
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/crypto.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
