// SPDX-License-Identifier: MIT
/*
 * Saved page copies for snapshots.
 *
 * A copy is a small header (its reference count) and the page's bytes,
 * allocated apart (see pagestore.h), and is shared by every snapshot, and by
 * the arena's record of its current content, that holds the same bytes for a
 * page: N snapshots of a mostly unchanged arena hold one copy per changed page,
 * not N.
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
#define HDR_PER_BLOCK 64

struct cow__hdr_block {
	struct cow__hdr_block *next;
	struct cow__page h[HDR_PER_BLOCK];
};

/* The bytes of one copy (its header's are counted by block). */
static size_t copy_size(const struct cow__pagestore *ps)
{
	return ps->pgsz;
}

static struct cow__page *hdr_get(struct cow__pagestore *ps)
{
	struct cow__page *h = ps->free_hdr;

	if (!h) {
		struct cow__hdr_block *b = cow__malloc(sizeof(*b));

		if (!b)
			return NULL;
		b->next = ps->blocks;
		ps->blocks = b;
		ps->bytes += sizeof(*b);
		for (size_t i = HDR_PER_BLOCK; i-- > 0;) {
			b->h[i].next = ps->free_hdr;
			ps->free_hdr = &b->h[i];
		}
		h = ps->free_hdr;
	}
	ps->free_hdr = h->next;
	return h;
}

static void hdr_put(struct cow__pagestore *ps, struct cow__page *h)
{
	h->next = ps->free_hdr;
	ps->free_hdr = h;
}

struct cow__page *cow__page_new(struct cow__pagestore *ps)
{
	struct cow__page *p;

	if (ps->nspare) {
		p = ps->spare[--ps->nspare];
	} else {
		unsigned char *data = cow__malloc(ps->pgsz);

		if (!data)
			return NULL;
		p = hdr_get(ps);
		if (!p) {
			cow__free(data);
			return NULL;
		}
		p->data = data;
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
	cow__free(p->data);
	hdr_put(ps, p);
}

/* Frees spare copies down to keep, or all of them and their list. */
static void cow__page_trim_to(struct cow__pagestore *ps, size_t keep)
{
	while (ps->nspare > keep) {
		struct cow__page *p = ps->spare[--ps->nspare];

		cow__free(p->data);
		hdr_put(ps, p);
		ps->bytes -= copy_size(ps);
	}
}

void cow__page_trim(struct cow__pagestore *ps)
{
	cow__page_trim_to(ps, 0);
	cow__free(ps->spare);
	ps->spare = NULL;
	if (ps->pages)
		return; /* headers still in use */
	while (ps->blocks) {
		struct cow__hdr_block *b = ps->blocks;

		ps->blocks = b->next;
		ps->bytes -= sizeof(*b);
		cow__free(b);
	}
	ps->free_hdr = NULL;
}

struct cow__page_mark cow__page_mark(const struct cow__pagestore *ps)
{
	struct cow__page_mark m = {ps->nspare, ps->blocks};

	return m;
}

static int in_block(const struct cow__hdr_block *b, const struct cow__page *h)
{
	return h >= b->h && h < b->h + HDR_PER_BLOCK;
}

/* The blocks added since the mark hold only free headers by now: take
 * those out of the free list, then free the blocks. */
void cow__page_rewind(struct cow__pagestore *ps, struct cow__page_mark m)
{
	struct cow__page **link = &ps->free_hdr;

	cow__page_trim_to(ps, m.nspare);
	if (ps->blocks == m.blocks)
		return;
	while (*link) {
		struct cow__hdr_block *b;
		int added = 0;

		for (b = ps->blocks; b != m.blocks; b = b->next)
			added |= in_block(b, *link);
		if (added)
			*link = (*link)->next;
		else
			link = &(*link)->next;
	}
	while (ps->blocks != m.blocks) {
		struct cow__hdr_block *b = ps->blocks;

		ps->blocks = b->next;
		ps->bytes -= sizeof(*b);
		cow__free(b);
	}
}
