// Wrapper module: builds CoreDNS (github.com/coredns/coredns is a main package) from the Go module proxy.
module digits.local/cluster/coredns

go 1.25.0

require github.com/coredns/coredns v1.14.7
