/*
 * Unit tests of port/control.c: an action reaches only its own request. A cancel
 * for a request taken from the inbox but not begun is kept until it begins; a
 * cancel for the request under a nested one waits until that one ends; two
 * actions that arrive together are both kept; actions for requests that ended
 * are dropped. The test thread plays both sides (CTL_SIGNAL is ignored here).
 */
#include <signal.h>
#include <stdint.h>

#include "check.h"
#include "control.h"

static void test_ctl_cancel_of_a_claimed_request_is_kept_until_it_begins(void)
{
    ctl_claim(11);
    CHECK_INT_EQ(ctl_request(CTL_CANCEL, 11), 1);
    CHECK_INT_EQ(ctl_take(), CTL_NONE); /* nothing runs yet */
    CHECK_INT_EQ(ctl_begin(11, 0), 0);
    CHECK_INT_EQ(ctl_take(), CTL_CANCEL);
    CHECK_INT_EQ(ctl_take(), CTL_NONE); /* taken once */
    ctl_end();
    CHECK_INT_EQ(ctl_depth(), 0);
}

static void test_ctl_cancel_of_an_ended_request_is_dropped(void)
{
    CHECK_INT_EQ(ctl_begin(21, 0), 0);
    ctl_end();
    CHECK_INT_EQ(ctl_request(CTL_CANCEL, 21), 0);
    CHECK_INT_EQ(ctl_begin(22, 0), 0);
    CHECK_INT_EQ(ctl_take(), CTL_NONE);
    ctl_end();
}

static void test_ctl_unclaimed_request_forgets_its_cancel(void)
{
    ctl_claim(31);
    CHECK_INT_EQ(ctl_request(CTL_CANCEL, 31), 1);
    ctl_unclaim(31);
    CHECK_INT_EQ(ctl_request(CTL_CANCEL, 31), 0);
    CHECK_INT_EQ(ctl_begin(31, 0), 0); /* an id reused by a test, not by Erlang */
    CHECK_INT_EQ(ctl_take(), CTL_NONE);
    ctl_end();
}

static void test_ctl_cancel_under_a_nested_request_waits_for_it(void)
{
    CHECK_INT_EQ(ctl_begin(41, 0), 0); /* A, waiting in erlang.call */
    CHECK_INT_EQ(ctl_begin(42, 0), 0); /* B, served nested on top of A */
    CHECK_INT_EQ(ctl_request(CTL_CANCEL, 41), 1);
    CHECK_INT_EQ(ctl_take(), CTL_NONE); /* never raised in B */
    CHECK_INT_EQ(ctl_current(), 42);
    ctl_end(); /* B returns into A's wait */
    CHECK_INT_EQ(ctl_current(), 41);
    CHECK_INT_EQ(ctl_take(), CTL_CANCEL);
    ctl_end();
}

static void test_ctl_two_actions_at_once_are_both_kept(void)
{
    CHECK_INT_EQ(ctl_begin(51, 0), 0);
    CHECK_INT_EQ(ctl_request(CTL_MEMORY, 51), 1);
    CHECK_INT_EQ(ctl_request(CTL_CANCEL, 51), 1);
    CHECK_INT_EQ(ctl_take(), CTL_CANCEL); /* cancel first */
    CHECK_INT_EQ(ctl_take(), CTL_MEMORY);
    CHECK_INT_EQ(ctl_take(), CTL_NONE);
    ctl_end();
}

static void test_ctl_two_cancels_for_two_requests_are_both_kept(void)
{
    CHECK_INT_EQ(ctl_begin(61, 0), 0);
    CHECK_INT_EQ(ctl_begin(62, 0), 0);
    CHECK_INT_EQ(ctl_request(CTL_CANCEL, 61), 1);
    CHECK_INT_EQ(ctl_request(CTL_CANCEL, 62), 1);
    CHECK_INT_EQ(ctl_take(), CTL_CANCEL); /* 62, on top */
    ctl_end();
    CHECK_INT_EQ(ctl_take(), CTL_CANCEL); /* 61 */
    ctl_end();
}

static void test_ctl_actions_die_with_their_request(void)
{
    CHECK_INT_EQ(ctl_begin(71, 0), 0);
    CHECK_INT_EQ(ctl_request(CTL_INTERRUPT, 71), 1);
    ctl_end(); /* ended before the signal was handled */
    CHECK_INT_EQ(ctl_begin(72, 0), 0);
    CHECK_INT_EQ(ctl_take(), CTL_NONE); /* never leaks into the next request */
    ctl_end();
}

static void test_ctl_no_target_is_not_live(void)
{
    CHECK_INT_EQ(ctl_request(CTL_INTERRUPT, 0), 0);
    CHECK_INT_EQ(ctl_request(CTL_CANCEL, 999), 0);
}

int main(void)
{
    signal(CTL_SIGNAL, SIG_IGN);
    ctl_init();
    RUN_TEST(test_ctl_cancel_of_a_claimed_request_is_kept_until_it_begins);
    RUN_TEST(test_ctl_cancel_of_an_ended_request_is_dropped);
    RUN_TEST(test_ctl_unclaimed_request_forgets_its_cancel);
    RUN_TEST(test_ctl_cancel_under_a_nested_request_waits_for_it);
    RUN_TEST(test_ctl_two_actions_at_once_are_both_kept);
    RUN_TEST(test_ctl_two_cancels_for_two_requests_are_both_kept);
    RUN_TEST(test_ctl_actions_die_with_their_request);
    RUN_TEST(test_ctl_no_target_is_not_live);
    return check_exit_status();
}
