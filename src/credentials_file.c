/* SPDX-License-Identifier: MIT */
/*
 * The AWS shared credentials and config files: finding one profile's
 * keys in their INI dialect.  What the keys lead to (static keys, a role
 * to assume) is the credential chain's business.
 */
#include "credentials_file.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

static const char *const credentials_file_names[CREDENTIALS_FILE_N_KEYS] = {
    [CREDENTIALS_FILE_ACCESS_KEY_ID] = "aws_access_key_id",
    [CREDENTIALS_FILE_SECRET_ACCESS_KEY] = "aws_secret_access_key",
    [CREDENTIALS_FILE_SESSION_TOKEN] = "aws_session_token",
    [CREDENTIALS_FILE_ROLE_ARN] = "role_arn",
    [CREDENTIALS_FILE_SOURCE_PROFILE] = "source_profile",
    [CREDENTIALS_FILE_ROLE_SESSION_NAME] = "role_session_name",
    [CREDENTIALS_FILE_EXTERNAL_ID] = "external_id",
    [CREDENTIALS_FILE_WEB_IDENTITY_TOKEN_FILE] = "web_identity_token_file",
    [CREDENTIALS_FILE_CREDENTIAL_SOURCE] = "credential_source",
    [CREDENTIALS_FILE_REGION] = "region",
};

static char *
trim(char *s)
{
    char *end;

    while (isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

/*
 * Whether the section header's inside names the profile.  The config
 * file spells profiles "profile NAME" except for the default one, which
 * some tools also write as "profile default".
 */
static bool
section_matches(char *inside, const char *name, bool config_file)
{
    char *s = trim(inside);

    if (!config_file)
        return strcmp(s, name) == 0;
    if (strcmp(s, "default") == 0)
        return strcmp(name, "default") == 0;
    if (strncmp(s, "profile", 7) != 0 || !isspace((unsigned char)s[7]))
        return false;
    return strcmp(trim(s + 7), name) == 0;
}

static int
profile_set(struct credentials_profile *p, const char *key, const char *value,
            bool keep_existing)
{
    for (size_t i = 0; i < CREDENTIALS_FILE_N_KEYS; i++) {
        if (strcmp(key, credentials_file_names[i]) != 0)
            continue;
        if (keep_existing && p->value[i])
            return 0;
        if (p->value[i]) {
            OPENSSL_cleanse(p->value[i], strlen(p->value[i]));
            free(p->value[i]);
        }
        p->value[i] = strdup(value);
        return p->value[i] ? 0 : -ENOMEM;
    }
    return 0;
}

/* One line inside or outside the profile's section. */
static int
parse_line(struct credentials_profile *p, char *line, bool config_file,
           const char *name, bool keep_existing, bool *in_section,
           bool *ret_nested)
{
    char *s = trim(line), *eq, *close, *value;

    if (*s == '\0' || *s == '#' || *s == ';')
        return 0;
    if (*s == '[') {
        close = strrchr(s, ']');
        if (!close)
            return -EBADMSG;
        *close = '\0';
        *in_section = section_matches(s + 1, name, config_file);
        if (*in_section)
            p->found = true;
        return 0;
    }
    eq = strchr(s, '=');
    if (!eq)
        return -EBADMSG;
    *eq = '\0';
    value = trim(eq + 1);
    *ret_nested = *value == '\0';
    if (!*in_section)
        return 0;
    return profile_set(p, trim(s), value, keep_existing);
}

static int
load_file(struct credentials_profile *p, const char *path, bool config_file,
          const char *name, bool keep_existing, char *reterr,
          size_t reterr_size)
{
    bool in_section = false, nested = false;
    char *line = NULL;
    size_t size = 0;
    unsigned lineno = 0;
    ssize_t n;
    FILE *f;
    int r = 0;

    if (!path)
        return 0;
    f = fopen(path, "re");
    if (!f)
        return 0;           /* a missing file is one with no profiles */

    while ((n = getline(&line, &size, f)) >= 0) {
        lineno++;
        /*
         * An indented line after "key =" with no value belongs to a
         * nested block ("s3 =\n  max_concurrent_requests = 10"): not ours.
         */
        if (nested && n > 0 && isspace((unsigned char)line[0]) &&
            *trim(line) != '\0')
            continue;
        nested = false;

        r = parse_line(p, line, config_file, name, keep_existing,
                       &in_section, &nested);
        if (r == -EBADMSG) {
            (void)snprintf(reterr, reterr_size, "%s:%u: not a [section], "
                           "key = value or comment line", path, lineno);
            break;
        }
        if (r < 0)
            break;
    }
    if (line) {
        OPENSSL_cleanse(line, size);
        free(line);
    }
    (void)fclose(f);
    return r;
}

int
credentials_profile_load(const char *credentials_path,
                         const char *config_path, const char *name,
                         struct credentials_profile *ret,
                         char *reterr, size_t reterr_size)
{
    int r;

    *ret = (struct credentials_profile){ 0 };
    r = load_file(ret, credentials_path, false, name, false, reterr,
                  reterr_size);
    if (r < 0)
        return r;
    return load_file(ret, config_path, true, name, true, reterr,
                     reterr_size);
}

void
credentials_profile_done(struct credentials_profile *p)
{
    for (size_t i = 0; i < CREDENTIALS_FILE_N_KEYS; i++) {
        if (!p->value[i])
            continue;
        OPENSSL_cleanse(p->value[i], strlen(p->value[i]));
        free(p->value[i]);
        p->value[i] = NULL;
    }
    p->found = false;
}

const char *
credentials_profile_get(const struct credentials_profile *p,
                        enum credentials_file_key key)
{
    const char *v = p->value[key];

    return v && *v ? v : NULL;
}
