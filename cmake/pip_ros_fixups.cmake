# Injected with -DCMAKE_PROJECT_INCLUDE only when building against the ROS 2 Jazzy
# PyPI wheels (never on a real ROS install; the Makefile decides).
#
# The wheels' exported *__rosidl_generator_py targets carry the include paths of the
# machine that built them (/opt/python/cp311-cp311/include/python3.11 and its NumPy),
# and CMake refuses imported targets whose include directories do not exist. At the
# end of configure, rewrite those paths to this interpreter's Python and NumPy include
# directories. Package CMakeLists.txt files stay untouched.

function(_emg_hand_fix_wheel_include_dirs)
  find_package(Python3 COMPONENTS Interpreter Development.Module NumPy QUIET)
  get_property(_targets DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  # Imported targets are directory-scoped; also visit subdirectories' targets.
  get_property(_subdirs DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY SUBDIRECTORIES)
  foreach(_dir IN LISTS _subdirs)
    get_property(_more DIRECTORY "${_dir}" PROPERTY IMPORTED_TARGETS)
    list(APPEND _targets ${_more})
  endforeach()
  foreach(_target IN LISTS _targets)
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs)
      continue()
    endif()
    set(_fixed "")
    set(_changed FALSE)
    foreach(_d IN LISTS _dirs)
      if(_d MATCHES "^/opt/python/[^/]+/include/python")
        list(APPEND _fixed ${Python3_INCLUDE_DIRS})
        set(_changed TRUE)
      elseif(_d MATCHES "^/opt/python/.*numpy.*/include$" OR
             (_d MATCHES "numpy/(_)?core/include$" AND NOT EXISTS "${_d}"))
        list(APPEND _fixed ${Python3_NumPy_INCLUDE_DIRS})
        set(_changed TRUE)
      elseif(NOT EXISTS "${_d}" AND _d MATCHES "^/opt/python/")
        set(_changed TRUE)
      else()
        list(APPEND _fixed "${_d}")
      endif()
    endforeach()
    if(_changed)
      list(REMOVE_DUPLICATES _fixed)
      set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_fixed}")
    endif()
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _emg_hand_fix_wheel_include_dirs)
