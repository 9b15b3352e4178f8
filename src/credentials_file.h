/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/*
 * One profile of the AWS shared files (~/.aws/credentials and
 * ~/.aws/config), the keys the credential chain uses.  Values are owned
 * and wiped when freed: some of them are secrets.
 */
enum credentials_file_key {
    CREDENTIALS_FILE_ACCESS_KEY_ID,
    CREDENTIALS_FILE_SECRET_ACCESS_KEY,
    CREDENTIALS_FILE_SESSION_TOKEN,
    CREDENTIALS_FILE_ROLE_ARN,
    CREDENTIALS_FILE_SOURCE_PROFILE,
    CREDENTIALS_FILE_ROLE_SESSION_NAME,
    CREDENTIALS_FILE_EXTERNAL_ID,
    CREDENTIALS_FILE_WEB_IDENTITY_TOKEN_FILE,
    CREDENTIALS_FILE_CREDENTIAL_SOURCE,
    CREDENTIALS_FILE_REGION,
    CREDENTIALS_FILE_N_KEYS,
};

struct credentials_profile {
    bool found;                 /* the section exists in either file */
    char *value[CREDENTIALS_FILE_N_KEYS];
};

/*
 * Reads profile name from the credentials file (section "[name]") and the
 * config file ("[profile name]", or "[default]"), the credentials file
 * winning for a key set in both, as the SDKs merge them.  Either path may
 * be NULL or name a missing file.  Returns 0 (check ret->found), -ENOMEM,
 * or -EBADMSG for a line that is not a section, a key = value pair or a
 * comment, with "FILE:LINE: what" in reterr (never a value: they may be
 * secret).  ret is initialised by the call and freed with
 * credentials_profile_done() in every case.
 */
int credentials_profile_load(const char *credentials_path,
                             const char *config_path, const char *name,
                             struct credentials_profile *ret,
                             char *reterr, size_t reterr_size);

void credentials_profile_done(struct credentials_profile *p);

/* The value, or NULL when unset or empty. */
const char *credentials_profile_get(const struct credentials_profile *p,
                                    enum credentials_file_key key);
