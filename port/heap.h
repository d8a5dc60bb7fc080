/*
 * The port's heap policy. Large terms make CPython and the codec allocate and
 * free megabytes per request; by default glibc returns each large block to the
 * kernel (munmap, heap trimming) and CPython maps its object arenas directly, so
 * every request pays page faults for the same memory again (expensive in virtual
 * machines). Here freed memory stays in the heap while requests come, and is
 * handed back to the kernel once the port has been idle for a while
 * (heap_idle), so an idle context's RSS stays small. Threading: heap_init before
 * Python starts and before any thread; heap_prefault from any one thread;
 * heap_note_work and heap_idle from the Python thread.
 */
#ifndef PYPORT_HEAP_H
#define PYPORT_HEAP_H

/// Keeps every malloc block in the heap (no mmap per large block), sets the
/// trim threshold and CPython's arena allocator. Call once, first.
void heap_init(void);

/// With libpython linked in statically, fills in the program's data pages at
/// once (heap.c) before Python writes them; else nothing. From any thread, once
/// (while Python starts on another is fine: a page Python touches first simply
/// faults in as before).
void heap_prefault(void);

/// A request has run (memory may have grown since the last trim).
void heap_note_work(void);

/// The Python thread is about to wait for work: returns how long (ms) it may
/// wait before calling heap_idle, or -1 when nothing is left to trim.
int heap_wait_ms(void);

/// Called when the wait timed out: returns freed memory to the kernel.
void heap_idle(void);

#endif
