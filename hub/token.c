/* Operator API tokens (token.h): random tokens, their SHA-256 (OpenSSL's
 * libcrypto) and the tokens file. */
#include "token.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/error.h"
#include "fleet/proto.h"

static const char *const role_names[] = {"none", "viewer", "mechanic", "operator"};

const char *hub_role_name(hub_role role) {
  return role >= HUB_ROLE_NONE && role <= HUB_ROLE_OPERATOR ? role_names[role] : "none";
}

hub_role hub_role_from_name(const char *name) {
  for (int r = HUB_ROLE_VIEWER; r <= HUB_ROLE_OPERATOR; r++)
    if (strcmp(name, role_names[r]) == 0) return (hub_role)r;
  return HUB_ROLE_NONE;
}

static void to_hex(const unsigned char *b, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

int hub_token_new(char *out) {
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) return FL_ERR_IO;
  memcpy(out, "flt_", 4);
  to_hex(raw, sizeof raw, out + 4);
  OPENSSL_cleanse(raw, sizeof raw);
  return FL_OK;
}

/* SHA-256 of the token's text into hash (32 bytes). */
static void token_hash(const char *token, unsigned char hash[32]) {
  unsigned int len = 0;
  if (EVP_Digest(token, strlen(token), hash, &len, EVP_sha256(), NULL) != 1 || len != 32)
    memset(hash, 0, 32); /* no match possible: every file hash is checked to be 64 hex */
}

void hub_token_hash_hex(const char *token, char hex[HUB_TOKEN_HASH_HEX + 1]) {
  unsigned char hash[32];
  token_hash(token, hash);
  to_hex(hash, sizeof hash, hex);
}

static bool hex_decode(const char *hex, unsigned char *out, size_t n) {
  if (strlen(hex) != 2 * n) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned v = 0;
    for (int k = 0; k < 2; k++) {
      char ch = hex[2 * i + (size_t)k];
      if (!isxdigit((unsigned char)ch)) return false;
      v = v * 16 + (unsigned)(isdigit((unsigned char)ch) ? ch - '0' : tolower((unsigned char)ch) - 'a' + 10);
    }
    out[i] = (unsigned char)v;
  }
  return true;
}

/* A holder's name: 1 to FL_ID_MAX of A-Z a-z 0-9 . _ : - (as fl_id_valid,
 * which fleetctl does not link). */
static bool name_valid(const char *s) {
  size_t n = strlen(s);
  return n >= 1 && n <= FL_ID_MAX &&
         strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-") == n;
}

bool hub_token_name_valid(const char *name) { return name_valid(name); }

/* Parses one non-comment line ("ROLE HASH NAME") into *t; false if malformed. */
static bool parse_line(char *line, hub_token *t) {
  char *save = NULL;
  char *role = strtok_r(line, " \t", &save);
  char *hash = strtok_r(NULL, " \t", &save);
  char *name = strtok_r(NULL, " \t", &save);
  if (!role || !hash || !name || strtok_r(NULL, " \t", &save)) return false;
  memset(t, 0, sizeof *t);
  t->role = hub_role_from_name(role);
  if (t->role == HUB_ROLE_NONE || !hex_decode(hash, t->hash, sizeof t->hash) || !name_valid(name))
    return false;
  snprintf(t->name, sizeof t->name, "%s", name);
  return true;
}

int hub_tokens_load(const char *path, hub_token **out, size_t *n, char *err, size_t errcap) {
  *out = NULL;
  *n = 0;
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, errcap, "config [http] tokens_file = '%s': cannot open file", path);
    return FL_ERR_CONFIG;
  }
  hub_token *tokens = NULL;
  size_t count = 0, cap = 0;
  int rc = FL_OK;
  char line[512];
  for (int lineno = 1; fgets(line, sizeof line, f); lineno++) {
    size_t len = strcspn(line, "\r\n");
    bool whole = line[len] != '\0' || feof(f);
    line[len] = '\0';
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (whole && (*p == '\0' || *p == '#')) continue;
    if (count == cap) {
      size_t grown_cap = cap ? cap * 2 : 8;
      hub_token *grown = realloc(tokens, grown_cap * sizeof *grown);
      if (!grown) {
        rc = FL_ERR_NOMEM;
        break;
      }
      tokens = grown;
      cap = grown_cap;
    }
    if (!whole || !parse_line(p, &tokens[count])) {
      snprintf(err, errcap,
               "tokens file %s line %d: not 'ROLE SHA256-HEX NAME' (ROLE viewer, mechanic or "
               "operator; 64 hex digits; NAME an id)",
               path, lineno);
      rc = FL_ERR_CONFIG;
      break;
    }
    count++;
  }
  fclose(f);
  if (rc != FL_OK) {
    free(tokens);
    return rc;
  }
  *out = tokens;
  *n = count;
  return FL_OK;
}

const hub_token *hub_tokens_find(const hub_token *tokens, size_t n, const char *token) {
  unsigned char hash[32];
  token_hash(token, hash);
  const hub_token *found = NULL;
  for (size_t i = 0; i < n; i++) /* no early exit: the time does not tell which entry matched */
    if (CRYPTO_memcmp(hash, tokens[i].hash, sizeof hash) == 0 && !found) found = &tokens[i];
  return found;
}
