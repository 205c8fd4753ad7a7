/* Who may use the operator API: the tokens ([http] tokens_file) and the
 * TLS certificate loaded when the server starts, and each request's
 * "Authorization: Bearer TOKEN" checked against the role its route needs. */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fleet/error.h"
#include "fleet/log.h"
#include "http_internal.h"

/* The role a route of this access needs from the caller, HUB_ROLE_NONE
 * when it is open. */
static hub_role route_role(const hub_http *h, http_access access) {
  switch (access) {
  case HTTP_OPEN: return HUB_ROLE_NONE;
  case HTTP_METRICS: return h->cfg.http_metrics_open ? HUB_ROLE_NONE : HUB_ROLE_VIEWER;
  case HTTP_VIEWER: return HUB_ROLE_VIEWER;
  case HTTP_MECHANIC: return HUB_ROLE_MECHANIC;
  default: return HUB_ROLE_OPERATOR;
  }
}

/* Checks the request's "Authorization: Bearer TOKEN" against the tokens
 * file when there is one. Returns MHD_HTTP_OK (r->who set when a token was
 * given), 401 (no token, or one the hub does not know) or 403 (its role is
 * below what the route needs), with *out set. */
unsigned http__authorize(http_request *r, http_access access, cJSON **out) {
  const hub_http *h = r->server;
  if (h->n_tokens == 0)
    return MHD_HTTP_OK;
  hub_role need = route_role(h, access);
  const char *auth =
      MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
    const char *token = auth + 7;
    while (*token == ' ')
      token++;
    r->who = hub_tokens_find(h->tokens, h->n_tokens, token);
  }
  if (need == HUB_ROLE_NONE)
    return MHD_HTTP_OK;
  if (!r->who) {
    r->challenge = true;
    http__fail(out, MHD_HTTP_UNAUTHORIZED, FL_ERR_INVALID, "%s",
               auth ? "the token is not one the hub knows" : "this needs Authorization: Bearer TOKEN");
    cJSON_ReplaceItemInObject(*out, "code", cJSON_CreateString("unauthorized"));
    return MHD_HTTP_UNAUTHORIZED;
  }
  if (r->who->role < need) {
    http__fail(out, MHD_HTTP_FORBIDDEN, FL_ERR_INVALID, "%s (%s) may not do this: it needs the %s role",
               r->who->name, hub_role_name(r->who->role), hub_role_name(need));
    cJSON_ReplaceItemInObject(*out, "code", cJSON_CreateString("forbidden"));
    return MHD_HTTP_FORBIDDEN;
  }
  return MHD_HTTP_OK;
}

/* Reads the whole file at path into a new NUL-terminated text (free it), or NULL. */
static char *read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  char *text = NULL;
  size_t len = 0, cap = 0, n;
  char buf[4096];
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
    if (len + n + 1 > cap) {
      cap = (len + n + 1) * 2;
      char *grown = realloc(text, cap);
      if (!grown) {
        free(text);
        fclose(f);
        return NULL;
      }
      text = grown;
    }
    memcpy(text + len, buf, n);
    len += n;
  }
  fclose(f);
  if (!text)
    text = calloc(1, 1);
  else
    text[len] = '\0';
  return text;
}

/* Loads the tokens and the TLS certificate the configuration names into h.
 * Returns FL_OK, or FL_ERR_CONFIG (logged). */
int http__security_load(hub_http *h, const hub_config *cfg) {
  char err[512];
  if (cfg->http_tokens_file[0]) {
    int rc = hub_tokens_load(cfg->http_tokens_file, &h->tokens, &h->n_tokens, err, sizeof err);
    if (rc != FL_OK) {
      fl_error("http: %s", err);
      return FL_ERR_CONFIG;
    }
    if (h->n_tokens == 0) {
      fl_error("http: tokens file %s holds no token: add one (fleetctl token new ROLE NAME) or "
               "leave [http] tokens_file unset",
               cfg->http_tokens_file);
      return FL_ERR_CONFIG;
    }
    fl_info("http: %zu tokens from %s; requests need Authorization: Bearer TOKEN", h->n_tokens,
            cfg->http_tokens_file);
  } else {
    fl_warn("http: no [http] tokens_file: the operator API on %s is open to anyone who can reach "
            "it (keep it on loopback; docs/operations.md, Operator API access)",
            cfg->http_bind);
  }
  if (!cfg->http_cert_file[0])
    return FL_OK;
  if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
    fl_error("http: [http] cert_file is set but this libmicrohttpd has no TLS");
    return FL_ERR_CONFIG;
  }
  h->tls_cert = read_text(cfg->http_cert_file);
  h->tls_key = read_text(cfg->http_key_file);
  if (!h->tls_cert || !h->tls_key) {
    fl_error("http: cannot read [http] %s %s", h->tls_cert ? "key_file" : "cert_file",
             h->tls_cert ? cfg->http_key_file : cfg->http_cert_file);
    return FL_ERR_CONFIG;
  }
  return FL_OK;
}
