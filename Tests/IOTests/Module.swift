// Tests of the IO module. Each concern has its own file beside this one.
