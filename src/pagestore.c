// SPDX-License-Identifier: MIT
/*
 * Saved page copies for snapshots.
 *
 * A copy is one allocation (a reference count, then the page's bytes) and
 * is shared by every snapshot, and by the arena's record of its current
 * content, that holds the same bytes for a page: N snapshots of a mostly
 * unchanged arena hold one copy per changed page, not N.
 *
 * Up to COW__SPARE freed copies are kept for reuse while snapshots live: a
 * search that checkpoints and rolls back in a loop frees and allocates the
 * same number of copies each round, and handing their memory back to the
 * system each time (malloc trims its heap) made every copy fault its page
 * in again, 4x the cost of the copy itself (measured). saved_bytes counts
 * exactly the bytes allocated, spares included; they are freed when the
 * last snapshot goes.
 */
#include <stddef.h>

#include "internal.h"
#include "pagestore.h"

#define COW__SPARE 256

static size_t copy_size(const struct cow__pagestore *ps)
{
	return sizeof(struct cow__page) + ps->pgsz;
}

struct cow__page *cow__page_new(struct cow__pagestore *ps)
{
	struct cow__page *p;

	if (ps->nspare) {
		p = ps->spare[--ps->nspare];
	} else {
		p = cow__malloc(copy_size(ps));
		if (!p)
			return NULL;
		ps->bytes += copy_size(ps);
	}
	p->ref = 1;
	ps->pages++;
	return p;
}

void cow__page_unref(struct cow__pagestore *ps, struct cow__page *p)
{
	if (!p || --p->ref)
		return;
	ps->pages--;
	if (!ps->spare)
		ps->spare = cow__malloc(COW__SPARE * sizeof(*ps->spare));
	if (ps->spare && ps->nspare < COW__SPARE) {
		ps->spare[ps->nspare++] = p;
		return;
	}
	ps->bytes -= copy_size(ps);
	cow__free(p);
}

void cow__page_trim_to(struct cow__pagestore *ps, size_t keep)
{
	while (ps->nspare > keep) {
		cow__free(ps->spare[--ps->nspare]);
		ps->bytes -= copy_size(ps);
	}
}

void cow__page_trim(struct cow__pagestore *ps)
{
	cow__page_trim_to(ps, 0);
	cow__free(ps->spare);
	ps->spare = NULL;
}
