// Tests of the Phone module. Each concern has its own file beside this one.
