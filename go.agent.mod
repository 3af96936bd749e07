// go.agent.mod: the module file otabake-agent is built with, so that the device agent builds
// with the Go of every Yocto series meta-otabake supports (scarthgap ships Go 1.22.12), while
// go.mod needs Go 1.26 for the build-side tool and its dependencies.
//
//	go build -modfile=go.agent.mod ./cmd/otabake-agent
//
// It lists only the modules otabake-agent imports, at the versions go.mod requires; the test
// internal/agentbuild keeps both in step and compiles the agent with Go 1.22.12.
module github.com/otabake/otabake

go 1.22

require github.com/BurntSushi/toml v1.6.0
