// Tests of the Console module. Each concern has its own file beside this one.
