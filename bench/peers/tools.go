//go:build tools

package benchpeers

import (
	_ "github.com/fatedier/frp/cmd/frpc"
	_ "github.com/fatedier/frp/cmd/frps"
	_ "github.com/jpillora/chisel"
)
