/* Operator API tokens: what a bearer token is, how it is hashed, and the
 * tokens file the hub reads ([http] tokens_file).
 *
 * A token is "flt_" followed by 64 lowercase hex digits (32 random bytes).
 * The hub never stores a token: the tokens file holds, one per line,
 *
 *     ROLE SHA256-HEX NAME
 *
 * where ROLE is viewer, mechanic or operator, SHA256-HEX the SHA-256 of the
 * token's text in lowercase hex, and NAME who holds it (an id: A-Z a-z 0-9
 * . _ : -, shown in the hub's log). Blank lines and lines starting with '#'
 * are skipped; anything else is an error that stops the hub. */
#ifndef HUB_TOKEN_H
#define HUB_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#include "fleet/proto.h"

#define HUB_TOKEN_LEN 68 /* "flt_" + 64 hex digits */
#define HUB_TOKEN_HASH_HEX 64

/* Roles, each allowed what the ones below it are. */
typedef enum hub_role {
  HUB_ROLE_NONE = 0, /* no token, or one the hub does not know */
  HUB_ROLE_VIEWER,   /* every GET */
  HUB_ROLE_MECHANIC, /* and repairs: open, start, complete */
  HUB_ROLE_OPERATOR, /* everything */
} hub_role;

/* One line of the tokens file. */
typedef struct hub_token {
  hub_role role;
  unsigned char hash[32];
  char name[FL_ID_MAX + 1];
} hub_token;

/* Returns "viewer", "mechanic", "operator" or "none". */
const char *hub_role_name(hub_role role);

/* Returns the role named name, or HUB_ROLE_NONE for any other text. */
hub_role hub_role_from_name(const char *name);

/* Returns true when name may name a token's holder (an id). */
bool hub_token_name_valid(const char *name);

/* Writes a new random token (HUB_TOKEN_LEN characters and a NUL) into out,
 * which has room for HUB_TOKEN_LEN + 1 bytes. Returns FL_OK, or FL_ERR_IO
 * when the system has no randomness to give. */
int hub_token_new(char *out);

/* Writes the lowercase hex SHA-256 of token (HUB_TOKEN_HASH_HEX characters
 * and a NUL) into hex. */
void hub_token_hash_hex(const char *token, char hex[HUB_TOKEN_HASH_HEX + 1]);

/* Reads the tokens file at path. Returns FL_OK with *out (an array of *n
 * tokens, free with free(); NULL and 0 for a file without tokens), or
 * FL_ERR_CONFIG with one sentence in err (the file cannot be read, or its
 * line N is not "ROLE SHA256-HEX NAME"), or FL_ERR_NOMEM. */
int hub_tokens_load(const char *path, hub_token **out, size_t *n, char *err, size_t errcap);

/* Finds the token whose hash is that of token among tokens[0..n): returns it,
 * or NULL. Every entry is compared in constant time. */
const hub_token *hub_tokens_find(const hub_token *tokens, size_t n, const char *token);

#endif
