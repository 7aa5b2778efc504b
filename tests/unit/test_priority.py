"""Questions go before indexing for the embedding model."""

from __future__ import annotations

import threading
import time

from rag.index.priority import PriorityLock, is_background, mark_background


def test_a_waiting_question_goes_before_the_next_indexing_batch() -> None:
    lock = PriorityLock()
    order: list[str] = []
    holding, release = threading.Event(), threading.Event()

    def indexer(name: str, first: bool) -> None:
        mark_background()
        with lock.hold():
            order.append(name)
            if first:
                holding.set()
                release.wait(10)

    def question() -> None:
        with lock.hold():
            order.append("question")

    first = threading.Thread(target=indexer, args=("batch 1", True))
    first.start()
    assert holding.wait(10)
    second = threading.Thread(target=indexer, args=("batch 2", False))
    asker = threading.Thread(target=question)
    second.start()
    asker.start()
    deadline = time.monotonic() + 10
    while lock.foreground_waiting == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    release.set()
    for thread in (first, second, asker):
        thread.join(10)
    assert order == ["batch 1", "question", "batch 2"]


def test_threads_are_foreground_unless_marked() -> None:
    seen: list[bool] = []
    worker = threading.Thread(target=lambda: seen.append(is_background()))
    worker.start()
    worker.join()
    assert seen == [False] and not is_background()


def test_a_thread_may_hold_the_lock_again_and_others_wait_until_it_lets_go() -> None:
    lock = PriorityLock()
    entered = threading.Event()
    with lock.hold(), lock.hold():
        other = threading.Thread(target=lambda: (lock.hold().__enter__(), entered.set()))
        other.start()
        assert not entered.wait(0.05)
    assert entered.wait(10)
    other.join(10)
