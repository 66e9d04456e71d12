// Declaration stub of <android/asset_manager_jni.h> (NDK). Type-checking only.
#pragma once
#include <jni.h>
#include "android/asset_manager.h"
extern "C" AAssetManager* AAssetManager_fromJava(JNIEnv* env, jobject assetManager);
