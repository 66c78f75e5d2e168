// Tests of the Control module. Each concern has its own file beside this one.
