# Agent unit tests; included from tests/CMakeLists.txt, which registers them
# with ctest. test_outbox reaches the outbox's internal header.
add_executable(test_outbox ${CMAKE_CURRENT_LIST_DIR}/test_outbox.c)
target_include_directories(test_outbox PRIVATE ${PROJECT_SOURCE_DIR}/agent)
target_link_libraries(test_outbox fleetagent)
