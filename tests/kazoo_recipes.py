"""kazoo's recipes against a Warren cluster while its leader is killed.

Run by tests/zookeeper_clients.rs: `python3 kazoo_recipes.py HOSTS`. It
starts its clients and the recipes, prints `KILL` when the leader should be
killed, reads a line from stdin once it has been, drives every recipe
through and after the change, and prints `OK` with its figures or `FAIL`
lines. Checked: every session survives (same session id, ephemerals still
there), no lock is held by two clients at once, an election has one leader
at a time, the counter loses no increment that returned (and counts at
most one extra per lost connection, kazoo's own retry), barriers and
queues work, a one-shot watch set before the kill fires exactly once.
"""

import sys
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, OperationTimeoutError, SessionExpiredError
from kazoo.protocol.states import KazooState
from kazoo.recipe.barrier import Barrier, DoubleBarrier
from kazoo.recipe.counter import Counter
from kazoo.recipe.election import Election
from kazoo.recipe.lock import Lock
from kazoo.recipe.queue import LockingQueue, Queue
from kazoo.retry import KazooRetry

HOSTS = sys.argv[1]
failures = []


def fail(why):
    failures.append(why)
    print("FAIL " + why, flush=True)


def client():
    retry = {"max_tries": -1, "delay": 0.05, "max_delay": 0.5}
    zk = KazooClient(hosts=HOSTS, timeout=10, connection_retry=retry, command_retry=retry)
    zk.start(timeout=30)
    return zk


def retrying(zk):
    return KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5, ignore_expire=False)


clients = [client() for _ in range(4)]
session_ids = [c.client_id[0] for c in clients]
for i, c in enumerate(clients):
    c.create("/members/m%d" % i, ephemeral=True, makepath=True)
stop = threading.Event()

# Locks: four clients contend; `holder` is who is inside the lock.
holder = [None]
lock_stats = {"held": 0, "twice": 0, "errors": 0}
lock_guard = threading.Lock()


def locker(i, zk):
    lock = Lock(zk, "/recipes/lock", "client-%d" % i)
    while not stop.is_set():
        try:
            with lock:
                with lock_guard:
                    if holder[0] is not None:
                        lock_stats["twice"] += 1
                    holder[0] = i
                time.sleep(0.005)
                with lock_guard:
                    holder[0] = None
                    lock_stats["held"] += 1
        except (ConnectionLoss, OperationTimeoutError):
            lock_stats["errors"] += 1
        except SessionExpiredError:
            fail("a lock's session expired")
            return


# Election: one leader at a time.
leading = [0]
election_stats = {"terms": 0, "two_leaders": 0}


def lead():
    with lock_guard:
        leading[0] += 1
        if leading[0] > 1:
            election_stats["two_leaders"] += 1
        election_stats["terms"] += 1
    time.sleep(0.02)
    with lock_guard:
        leading[0] -= 1


def candidate(i, zk):
    election = Election(zk, "/recipes/election", "client-%d" % i)
    while not stop.is_set():
        try:
            election.run(lead)
        except (ConnectionLoss, OperationTimeoutError):
            pass
        except SessionExpiredError:
            fail("an election's session expired")
            return


# Counter: increments that returned are counted; one that failed with a
# lost connection may or may not have been applied. kazoo's counter also
# retries by itself after a lost connection (it reads the value again and
# adds one), so an increment whose first write did apply counts twice: at
# most once per connection loss of a counting client, with ZooKeeper too.
counted = {"done": 0, "unknown": 0}
suspensions = [0]


def on_state(state):
    if state == KazooState.SUSPENDED:
        with lock_guard:
            suspensions[0] += 1


def counter_loop(zk):
    counter = Counter(zk, "/recipes/counter")
    while not stop.is_set():
        try:
            counter += 1
            with lock_guard:
                counted["done"] += 1
        except (ConnectionLoss, OperationTimeoutError):
            with lock_guard:
                counted["unknown"] += 1
        time.sleep(0.002)


# A one-shot watch set before the kill, fired after it.
fired = []
clients[0].create("/recipes/watched", b"0", makepath=True)
clients[0].get("/recipes/watched", watch=lambda event: fired.append(event))

threads = [threading.Thread(target=locker, args=(i, c)) for i, c in enumerate(clients)]
threads += [threading.Thread(target=candidate, args=(i, c)) for i, c in enumerate(clients[:3])]
for c in clients[1:3]:
    c.add_listener(on_state)
threads += [threading.Thread(target=counter_loop, args=(c,)) for c in clients[1:3]]
for t in threads:
    t.start()
time.sleep(1.5)
print("KILL", flush=True)
sys.stdin.readline()
time.sleep(3)

# After the leader change: the watch fires once.
clients[1].retry(clients[1].set, "/recipes/watched", b"1")
clients[1].retry(clients[1].set, "/recipes/watched", b"2")
time.sleep(1)
if len(fired) != 1:
    fail("the one-shot watch fired %d times, not once: %r" % (len(fired), fired))

# Barrier and double barrier.
barrier = Barrier(clients[0], "/recipes/barrier")
barrier.create()
passed = []
waiter = threading.Thread(target=lambda: passed.append(Barrier(clients[1], "/recipes/barrier").wait(20)))
waiter.start()
time.sleep(0.3)
barrier.remove()
waiter.join()
if passed != [True]:
    fail("the barrier did not let its waiter through: %r" % passed)
entered = []


def double(i):
    b = DoubleBarrier(clients[i], "/recipes/double", 3)
    b.enter()
    entered.append(i)
    b.leave()


doubles = [threading.Thread(target=double, args=(i,)) for i in range(3)]
for t in doubles:
    t.start()
for t in doubles:
    t.join(30)
if sorted(entered) != [0, 1, 2]:
    fail("the double barrier let %r through" % entered)

# Queues: FIFO by priority, and a locking queue's item consumed once.
queue = Queue(clients[0], "/recipes/queue")
for item in (b"a", b"b", b"c"):
    queue.put(item)
# Reads are served by each client's own server: another client's writes
# are seen there after a sync (as with ZooKeeper).
clients[1].sync("/recipes/queue")
got = [Queue(clients[1], "/recipes/queue").get() for _ in range(3)]
if got != [b"a", b"b", b"c"]:
    fail("the queue gave %r" % got)
lq = LockingQueue(clients[0], "/recipes/lqueue")
lq.put(b"job")
taker = LockingQueue(clients[2], "/recipes/lqueue")
if taker.get(10) != b"job" or not taker.consume():
    fail("the locking queue did not hand its item over")
if LockingQueue(clients[3], "/recipes/lqueue").get(0.5) is not None:
    fail("the locking queue handed a consumed item out again")

time.sleep(1)
stop.set()
for t in threads:
    t.join(30)

# Sessions survived: same ids, ephemerals in place.
for i, c in enumerate(clients):
    if c.client_id[0] != session_ids[i]:
        fail("client %d has a new session" % i)
clients[0].sync("/")
members = sorted(clients[0].get_children("/members"))
if members != ["m0", "m1", "m2", "m3"]:
    fail("the members' ephemerals are %r" % members)
if lock_stats["twice"]:
    fail("a lock was held twice %d times" % lock_stats["twice"])
if lock_stats["held"] == 0:
    fail("no lock was ever held")
if election_stats["two_leaders"]:
    fail("two leaders at once %d times" % election_stats["two_leaders"])
if election_stats["terms"] < 2:
    fail("the election had %d terms" % election_stats["terms"])
clients[0].sync("/recipes/counter")
value = Counter(clients[0], "/recipes/counter").value
most = counted["done"] + counted["unknown"] + suspensions[0]
if not counted["done"] <= value <= most:
    fail(
        "the counter holds %d after %d increments (%d unknown, %d connection losses)"
        % (value, counted["done"], counted["unknown"], suspensions[0])
    )
for c in clients:
    c.stop()
    c.close()
if not failures:
    print(
        "OK locks %d (connection errors %d), election terms %d, counter %d after %d increments (%d unknown, %d connection losses)"
        % (lock_stats["held"], lock_stats["errors"], election_stats["terms"], value, counted["done"], counted["unknown"], suspensions[0]),
        flush=True,
    )
