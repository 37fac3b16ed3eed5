"""Ctrl-C held back during a compiled call (xai_fer.interrupts): a KeyboardInterrupt raised inside TensorFlow's
tracing comes out as a RuntimeError or a crashed process, so the signal is noted during the call and raised right
after it; nested holds and other threads leave the handlers alone."""

import os
import signal
import threading

import pytest

from xai_fer.interrupts import holding_interrupts, interrupts_held


def _interrupt_self(number=signal.SIGINT):
    os.kill(os.getpid(), number)


def test_ctrl_c_during_the_call_is_raised_right_after_it():
    finished = []

    @holding_interrupts
    def compiled_call():
        _interrupt_self()
        finished.append("the call ran to its end")
        return 42

    with pytest.raises(KeyboardInterrupt):
        compiled_call()
    assert finished == ["the call ran to its end"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_command_s_own_handler_gets_the_held_signal_once():
    received = []
    before = signal.signal(signal.SIGTERM, lambda number, frame: received.append(number))
    try:
        with interrupts_held():
            _interrupt_self(signal.SIGTERM)
            _interrupt_self(signal.SIGTERM)
            assert received == []
        assert received == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, before)


def test_nested_holds_raise_once_when_the_outermost_ends():
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_held():
            with interrupts_held():
                _interrupt_self()
            reached.append("after the inner hold")
    assert reached == ["after the inner hold"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_without_a_signal_the_call_returns_its_value_and_handlers_are_restored():
    assert holding_interrupts(lambda a, b=1: a + b)(2, b=3) == 5
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_off_the_main_thread_nothing_is_touched():
    seen = []

    def worker():
        with interrupts_held():  # signal.signal would raise ValueError here
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [signal.default_int_handler]
