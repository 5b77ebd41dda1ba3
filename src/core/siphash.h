/* siphash.h — SipHash-2-4 with a 128-bit tag (Aumasson & Bernstein): a
 * keyed pseudo-random function, cheap on short inputs. Without the key its
 * output cannot be predicted, so a table indexed by it reveals nothing
 * about the bytes hashed (the API key index uses it this way). Written
 * here rather than taken from OpenSSL's EVP_MAC "SIPHASH" because that
 * allocates a context per call, on the request path. */
#ifndef GH_CORE_SIPHASH_H
#define GH_CORE_SIPHASH_H
#include <stddef.h>
#include <stdint.h>

/* out = SipHash-2-4-128(key, p[0..len)), bytes in the reference order. */
void gh_siphash128(const uint8_t key[16], const void *p, size_t len, uint8_t out[16]);

#endif
