// Apache Curator (Debian's libcurator-recipes-java) against a Warren
// cluster's ZooKeeper ports. Run by tests/zookeeper_clients.rs:
//   java -cp CLASSPATH:DIR CuratorCheck HOSTS
// prints one line per check and `OK` at the end, or `FAIL ...` and exits 1.

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.CreateMode;

public class CuratorCheck {
    static void check(boolean ok, String what) {
        if (!ok) {
            System.out.println("FAIL " + what);
            System.exit(1);
        }
        System.out.println("ok " + what);
    }

    static CuratorFramework client(String hosts) throws Exception {
        CuratorFramework c = CuratorFrameworkFactory.newClient(hosts, 10000, 5000, new ExponentialBackoffRetry(100, 10));
        c.start();
        check(c.blockUntilConnected(30, TimeUnit.SECONDS), "connected");
        return c;
    }

    // Reads are served by each client's own server: another client's
    // write is seen there once that server has applied it (ZooKeeper's
    // guarantee too), so a read of it is tried until it is.
    static <T> T eventually(java.util.concurrent.Callable<T> read, java.util.function.Predicate<T> seen) throws Exception {
        long deadline = System.currentTimeMillis() + 10000;
        while (true) {
            T value = null;
            try {
                value = read.call();
            } catch (org.apache.zookeeper.KeeperException.NoNodeException e) {
                // not there yet
            }
            if ((value != null && seen.test(value)) || System.currentTimeMillis() > deadline) {
                return value;
            }
            Thread.sleep(20);
        }
    }

    public static void main(String[] args) throws Exception {
        String hosts = args[0];
        CuratorFramework a = client(hosts);
        CuratorFramework b = client(hosts);

        // Plain operations through Curator's fluent API.
        a.create().creatingParentsIfNeeded().forPath("/curator/config", "v1".getBytes(StandardCharsets.UTF_8));
        byte[] v1 = eventually(() -> b.getData().forPath("/curator/config"), d -> true);
        check(v1 != null && new String(v1, StandardCharsets.UTF_8).equals("v1"), "create then read from another session");
        a.setData().withVersion(0).forPath("/curator/config", "v2".getBytes(StandardCharsets.UTF_8));
        a.create().withMode(CreateMode.EPHEMERAL_SEQUENTIAL).forPath("/curator/member-");
        List<String> members = eventually(() -> b.getChildren().forPath("/curator"), c -> c.size() == 2);
        check(members.size() == 2 && members.contains("config"), "children " + members);
        a.transaction().forOperations(
            a.transactionOp().create().forPath("/curator/t1"),
            a.transactionOp().check().withVersion(1).forPath("/curator/config"));
        check(eventually(() -> b.checkExists().forPath("/curator/t1"), st -> true) != null, "a transaction");

        // CuratorCache: a persistent recursive watch (addWatch) underneath.
        CountDownLatch seen = new CountDownLatch(1);
        CuratorCache cache = CuratorCache.build(b, "/curator");
        cache.listenable().addListener(CuratorCacheListener.builder()
            .forCreates(node -> { if (node.getPath().equals("/curator/later")) seen.countDown(); })
            .build());
        cache.start();
        Thread.sleep(500);
        a.create().forPath("/curator/later");
        check(seen.await(10, TimeUnit.SECONDS), "CuratorCache saw a create");
        cache.close();

        // A lock held by one client at a time.
        InterProcessMutex lockA = new InterProcessMutex(a, "/curator/lock");
        InterProcessMutex lockB = new InterProcessMutex(b, "/curator/lock");
        check(lockA.acquire(10, TimeUnit.SECONDS), "the first client takes the lock");
        check(!lockB.acquire(500, TimeUnit.MILLISECONDS), "the second waits while it is held");
        lockA.release();
        check(lockB.acquire(10, TimeUnit.SECONDS), "the second takes it once released");
        lockB.release();

        // A leader latch with two participants: exactly one leads.
        LeaderLatch la = new LeaderLatch(a, "/curator/latch", "a");
        LeaderLatch lb = new LeaderLatch(b, "/curator/latch", "b");
        la.start();
        lb.start();
        long deadline = System.currentTimeMillis() + 10000;
        while (!la.hasLeadership() && !lb.hasLeadership() && System.currentTimeMillis() < deadline) {
            Thread.sleep(50);
        }
        check(la.hasLeadership() ^ lb.hasLeadership(), "one leader of two");
        la.close();
        lb.close();

        // An atomic counter from both clients.
        DistributedAtomicLong ca = new DistributedAtomicLong(a, "/curator/counter", new RetryNTimes(10, 10));
        DistributedAtomicLong cb = new DistributedAtomicLong(b, "/curator/counter", new RetryNTimes(10, 10));
        AtomicInteger done = new AtomicInteger();
        for (int i = 0; i < 20; i++) {
            AtomicValue<Long> v = (i % 2 == 0 ? ca : cb).increment();
            if (v.succeeded()) done.incrementAndGet();
        }
        check(eventually(() -> ca.get().postValue(), v -> v == done.get()) == done.get(), "the counter counts " + done.get() + " increments");

        a.close();
        b.close();
        System.out.println("OK");
    }
}
