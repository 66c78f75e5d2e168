// Tests of the Tunnel module. Each concern has its own file beside this one.
