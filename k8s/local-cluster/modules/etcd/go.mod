// Wrapper module: builds etcd's server (go.etcd.io/etcd/server/v3 is a main package) from the
// Go module proxy; its own go.mod has replace lines, so it can't be built with `go install`.
module digits.local/cluster/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 v3.6.16
