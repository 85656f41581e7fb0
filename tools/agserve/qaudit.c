/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle/audit.h"
#include "qaudit.h"

struct qaudit {
	char *path;
	pthread_mutex_t mu;
	struct bn_audit_head head;
};

int qaudit_open(const char *path, struct qaudit **ret, char *err, size_t errlen)
{
	struct stat st;
	struct bn_error e = {0};
	struct qaudit *q;
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -errno;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(err, errlen, "%s: not a regular file", path);
		return -EINVAL;
	}
	close(fd);
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(err, errlen, "%s: writable by group or others (mode %03o); chmod 600 it", path,
		         (unsigned)(st.st_mode & 0777));
		return -EPERM;
	}
	if (!(q = calloc(1, sizeof(*q))) || !(q->path = strdup(path))) {
		free(q);
		return -ENOMEM;
	}
	int r = bn_audit_verify(path, NULL, &q->head, NULL, &e);
	if (r < 0) {
		snprintf(err, errlen, "%s", e.msg);
		free(q->path);
		free(q);
		return r;
	}
	pthread_mutex_init(&q->mu, NULL);
	*ret = q;
	return 0;
}

void qaudit_free(struct qaudit *q)
{
	if (!q)
		return;
	pthread_mutex_destroy(&q->mu);
	free(q->path);
	free(q);
}

int qaudit_append(struct qaudit *q, json_t *rec, char *err, size_t errlen)
{
	struct bn_error e = {0};
	pthread_mutex_lock(&q->mu);
	int r = bn_audit_append_json(q->path, &q->head, rec, 0600, &q->head, &e);
	pthread_mutex_unlock(&q->mu);
	if (r < 0)
		snprintf(err, errlen, "%s", e.msg);
	return r;
}
