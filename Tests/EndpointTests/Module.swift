// Tests of the Endpoint module. Each concern has its own file beside this one.
