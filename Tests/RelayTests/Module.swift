// Tests of the Relay module. Each concern has its own file beside this one.
