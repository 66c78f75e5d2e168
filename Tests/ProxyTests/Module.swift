// Tests of the Proxy module. Each concern has its own file beside this one.
