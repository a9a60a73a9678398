/* tokenledger-verify DATA_DIR: verifies each "key:token" line of stdin against the
 * read model of the tokenledgerd serving DATA_DIR and prints one line per answer:
 *   valid owner=alice kind=user            or   invalid reason=bad_secret
 * Credentials come on stdin, never as arguments (other users can read argv in ps).
 * Exit status: 0 every line valid, 1 some invalid, 2 an error (the status name and
 * message on stderr). */
#include <stdio.h>
#include <string.h>

#include "tokenledger_verify.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: tokenledger-verify DATA_DIR < credentials (key:token lines)\n");
    return 2;
  }
  tokenledger_verifier* v = NULL;
  int rc = tokenledger_verify_open(argv[1], &v);
  if (rc != TOKENLEDGER_VERIFY_OK) {
    fprintf(stderr, "%s: %s\n", tokenledger_verify_status_name(rc),
            tokenledger_verify_last_error());
    return 2;
  }
  int status = 0;
  char line[1024];
  while (fgets(line, sizeof line, stdin) != NULL) {
    size_t len = strcspn(line, "\r\n");
    tokenledger_verify_result r;
    rc = tokenledger_verify_credentials(v, line, len, &r);
    memset(line, 0, sizeof line);
    if (rc != TOKENLEDGER_VERIFY_OK) {
      fprintf(stderr, "%s: %s\n", tokenledger_verify_status_name(rc),
              tokenledger_verify_last_error());
      status = 2;
      break;
    }
    if (r.valid) {
      printf("valid owner=%s kind=%s", r.owner, r.kind_text);
      if (r.destination_id[0] != '\0') printf(" destination_id=%s", r.destination_id);
      printf("\n");
    } else {
      printf("invalid reason=%s\n", r.reason_text);
      if (status == 0) status = 1;
    }
    fflush(stdout);
  }
  tokenledger_verify_close(v);
  return status;
}
