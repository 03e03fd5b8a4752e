#ifndef CMALLOC_SHIM_H
#define CMALLOC_SHIM_H
// glibc's malloc extensions (malloc_trim), which the Glibc module does not export.
#if __has_include(<malloc.h>)
#include <malloc.h>
#endif
#endif
