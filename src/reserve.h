/* SPDX-License-Identifier: MIT */
/*
 * reserve.c: the arena's address space. A reservation is made once, at
 * open, for the arena's largest size; the base is mapped over its head as
 * the arena grows.
 */
#ifndef COW_RESERVE_H
#define COW_RESERVE_H

#include <stddef.h>

struct cow_arena;

int cow__reserve(void *hint, size_t len, int fixed, char **out);
int cow__reserve_map_base(struct cow_arena *a, size_t from, size_t to);
void cow__reserve_release(char *base, size_t len);

#endif
